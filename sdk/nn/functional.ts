/**
 * Layer ops as functions (like `torch.nn.functional`): convolution, pooling, normalisation,
 * dropout and the linear map. Layouts: activations NHWC, convolution weights HWIO
 * `[kh, kw, inChannels / groups, outChannels]`, linear weights `[out, in]` (PyTorch's layout).
 */
import { checkInt, checkNumber, checkOptions, describe, MAX_ELEMENTS, MAX_RANK } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { bernoulli } from '../creation.js';
import { call } from '../runtime.js';
import { assertTensor, fromHandle, Tensor } from '../tensor.js';

/** One size for both spatial dimensions, or `[vertical, horizontal]`. */
export type Pair = number | [number, number];
/** `'valid'`, `'same'` (output = ceil(input / stride)), one number, `[vertical, horizontal]`, or `[top, bottom, left, right]`. */
export type Padding = 'valid' | 'same' | number | [number, number] | [number, number, number, number];

function pair(v: Pair, what: string): [number, number] {
  const p: [number, number] = typeof v === 'number' ? [v, v] : v;
  if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 1 && x <= MAX_ELEMENTS)) {
    throw new ArgumentError(`${what} must be a positive integer (at most ${MAX_ELEMENTS}) or a pair of them, got ${describe(v)}`);
  }
  return p;
}

/** Explicit [top, bottom, left, right] padding for an input of size (h, w). 'same' follows TensorFlow (extra row/column at the bottom/right). */
export function resolvePadding(padding: Padding, inH: number, inW: number, kernel: [number, number], stride: [number, number], dilation: [number, number] = [1, 1]): [number, number, number, number] {
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding === undefined || padding === null) throw new ArgumentError(`padding must be 'same', 'valid', or non-negative integers, got ${describe(padding)}`);
  if (padding === 'same') {
    const total = (size: number, k: number, s: number, d: number) => Math.max((Math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0);
    const th = total(inH, kernel[0], stride[0], dilation[0]);
    const tw = total(inW, kernel[1], stride[1], dilation[1]);
    return [Math.floor(th / 2), th - Math.floor(th / 2), Math.floor(tw / 2), tw - Math.floor(tw / 2)];
  }
  const p = typeof padding === 'number' ? [padding, padding, padding, padding]
    : padding.length === 2 ? [padding[0], padding[0], padding[1], padding[1]] : padding;
  if (!Array.isArray(p) || p.length !== 4 || !p.every((x) => Number.isInteger(x) && x >= 0 && x <= MAX_ELEMENTS)) {
    throw new ArgumentError(`padding must be 'same', 'valid', or non-negative integers (at most ${MAX_ELEMENTS}), got ${describe(padding)}`);
  }
  return p as [number, number, number, number];
}

function spatial(x: Tensor, op: string): [number, number] {
  assertTensor(x, `${op} needs a Tensor input`);
  if (x.rank !== 4) throw new ShapeError(`${op} expects NHWC input of rank 4, got shape [${x.shape.join(', ')}]`);
  return [x.shape[1], x.shape[2]];
}

/** Options of `conv2d` and `Conv2d`. */
export interface Conv2dOptions {
  /** Step of the window (default 1). */
  stride?: Pair;
  /** Default `'valid'` (no padding); `'same'` pads as TensorFlow (extra row/column at the bottom/right). */
  padding?: Padding;
  /** Spacing between kernel taps (default 1). */
  dilation?: Pair;
  /** Channel groups (default 1); must divide the input and output channels; groups = channels is depthwise. */
  groups?: number;
  /** A fused epilogue: ReLU applied in the same pass (backward masks the gradient accordingly). */
  activation?: 'relu' | null;
}

function fusedRelu(activation: 'relu' | null | undefined, op: string): boolean {
  if (activation === undefined || activation === null) return false;
  if (activation === 'relu') return true;
  throw new ArgumentError(`${op}: the only fused activation is 'relu', got ${describe(activation)}`);
}

/** The checked arguments of a convolution op: whether ReLU is fused, then the engine call's arguments. */
function convArgs(op: string, x: Tensor, weight: Tensor, bias: Tensor | null, opts: Conv2dOptions) {
  const [h, w] = spatial(x, op);
  assertTensor(weight, `${op} needs a Tensor weight`);
  if (bias !== null) assertTensor(bias, `${op}: bias must be a Tensor or null`);
  opts = checkOptions(opts, `${op} options`);
  if (weight.rank !== 4) throw new ShapeError(`${op} weight must be [kh, kw, in/groups, out], got [${weight.shape.join(', ')}]`);
  const stride = pair(opts.stride ?? 1, 'stride');
  const dilation = pair(opts.dilation ?? 1, 'dilation');
  const pad = resolvePadding(opts.padding ?? 'valid', h, w, [weight.shape[0], weight.shape[1]], stride, dilation);
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new ArgumentError(`groups must be a positive integer, got ${groups}`);
  const relu = fusedRelu(opts.activation, op);
  return [relu, [x.handle, weight.handle, bias ? bias.handle : 0, Uint32Array.from(stride), Uint32Array.from(pad), Uint32Array.from(dilation), groups] as const] as const;
}

/** 2-D convolution. x `[N, H, W, Cin]`, weight `[kh, kw, Cin / groups, Cout]`, bias `[Cout]`. */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const [relu, a] = convArgs('conv2d', x, weight, bias, opts);
  return fromHandle(call((e) => (relu ? e.op_conv2d_relu : e.op_conv2d)(...a)));
}

/**
 * `maxPool2d(conv2d(x, weight, bias, { ...opts, activation: 'relu' }), 2)` as one op: convolution,
 * ReLU, then 2x2 max pooling at stride 2 (an odd last row or column is dropped), bitwise what the
 * two ops give. Without a gradient to record, the general convolution path runs it in one pass
 * that never writes the unpooled activations (`Sequential` uses it for a `Conv2d` with ReLU
 * followed by `MaxPool2d(2)` at inference). `opts.activation` may only be `'relu'` or absent.
 */
export function conv2dReluMaxPool2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  const [, a] = convArgs('conv2dReluMaxPool2d', x, weight, bias, opts);
  return fromHandle(call((e) => e.op_conv2d_relu_max_pool2(...a)));
}

/** Options of the pooling functions and layers. */
export interface Pool2dOptions {
  /** Step of the window (default: the kernel size). */
  stride?: Pair;
  /** Default `'valid'`; `'same'` pads as TensorFlow. */
  padding?: Padding;
}

function poolArgs(x: Tensor, kernel: Pair, opts: Pool2dOptions, op: string) {
  const [h, w] = spatial(x, op);
  opts = checkOptions(opts, `${op} options`);
  const k = pair(kernel, 'kernel size');
  const stride = pair(opts.stride ?? k, 'stride');
  const pad = resolvePadding(opts.padding ?? 'valid', h, w, k, stride);
  return [Uint32Array.from(k), Uint32Array.from(stride), Uint32Array.from(pad)] as const;
}

/** Max pooling over NHWC windows (stride defaults to the kernel size). */
export function maxPool2d(x: Tensor, kernel: Pair, opts: Pool2dOptions = {}): Tensor {
  const [k, s, p] = poolArgs(x, kernel, opts, 'maxPool2d');
  return fromHandle(call((e) => e.op_max_pool2d(x.handle, k, s, p)));
}

/** Options of `avgPool2d` and `AvgPool2d`. */
export interface AvgPool2dOptions extends Pool2dOptions {
  /**
   * Padding counts in the divisor, as zeros (default true, PyTorch's `count_include_pad`); false
   * divides each window by its input elements only (TensorFlow / Keras 'same' pooling).
   */
  countIncludePad?: boolean;
}

/** Average pooling (stride defaults to the kernel size); padding counts in the average unless `countIncludePad: false`. */
export function avgPool2d(x: Tensor, kernel: Pair, opts: AvgPool2dOptions = {}): Tensor {
  const [k, s, p] = poolArgs(x, kernel, opts, 'avgPool2d');
  const cip = opts.countIncludePad ?? true;
  if (typeof cip !== 'boolean') throw new ArgumentError(`avgPool2d: countIncludePad must be a boolean, got ${describe(cip)}`);
  return fromHandle(call((e) => e.op_avg_pool2d(x.handle, k, s, p, cip)));
}

/** Mean over H and W: `[N, H, W, C]` -> `[N, C]`. */
export function globalAvgPool2d(x: Tensor): Tensor {
  spatial(x, 'globalAvgPool2d');
  return x.mean([1, 2]);
}

/** Options of `batchNorm`: the affine parameters and running statistics, each `[C]` or null. */
export interface BatchNormOptions {
  /** Per-channel scale γ `[C]` (default none). */
  weight?: Tensor | null;
  /** Per-channel shift β `[C]` (default none). */
  bias?: Tensor | null;
  /** Running mean `[C]`: updated in place when training, used for normalising when not. */
  runningMean?: Tensor | null;
  /** Running variance `[C]`: updated in place when training, used for normalising when not. */
  runningVar?: Tensor | null;
  /** Normalise with the batch statistics and update the running ones (default true). */
  training?: boolean;
  /** Weight of the new batch in the running statistics (PyTorch convention; Keras' 0.99 is 0.01 here). */
  momentum?: number;
  /** Added to the variance before the square root (default 1e-5). */
  eps?: number;
  /** Running variance from the unbiased batch variance (PyTorch); false = biased (Keras/tfjs). */
  unbiasedRunningVar?: boolean;
}

/** Batch normalisation over every dim but the last (channels-last). Updates running stats in place when training. */
export function batchNorm(x: Tensor, o: BatchNormOptions = {}): Tensor {
  assertTensor(x, 'batchNorm needs a Tensor input');
  o = checkOptions(o, 'batchNorm options');
  const h = (t?: Tensor | null) => (t ? (assertTensor(t, 'batchNorm: weight, bias and running statistics must be Tensors'), t.handle) : 0);
  if (o.momentum !== undefined) checkNumber(o.momentum, 'batchNorm momentum', { finite: true });
  if (o.eps !== undefined) checkNumber(o.eps, 'batchNorm eps', { finite: true });
  return fromHandle(call((e) => e.op_batch_norm(x.handle, h(o.weight), h(o.bias), h(o.runningMean), h(o.runningVar),
    o.training ?? true, o.momentum ?? 0.1, o.eps ?? 1e-5, o.unbiasedRunningVar ?? true)));
}

/** Layer normalisation over the last `normalizedDims` dims. */
export function layerNorm(x: Tensor, normalizedDims = 1, o: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): Tensor {
  assertTensor(x, 'layerNorm needs a Tensor input');
  checkInt(normalizedDims, 'layerNorm normalizedDims', 1, MAX_RANK);
  o = checkOptions(o, 'layerNorm options');
  for (const t of [o.weight, o.bias]) if (t) assertTensor(t, 'layerNorm: weight and bias must be Tensors');
  if (o.eps !== undefined) checkNumber(o.eps, 'layerNorm eps', { finite: true });
  return fromHandle(call((e) => e.op_layer_norm(x.handle, o.weight ? o.weight.handle : 0, o.bias ? o.bias.handle : 0, normalizedDims, o.eps ?? 1e-5)));
}

/** Inverted dropout: zeroes each element with probability p and scales the rest by 1/(1-p). Identity when not training. */
export function dropout(x: Tensor, p: number, training = true, seed?: number): Tensor {
  assertTensor(x, 'dropout needs a Tensor input');
  if (!(p >= 0 && p < 1)) throw new ArgumentError(`dropout probability must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x.clone();
  const mask = bernoulli(x.shape, 1 - p, seed === undefined ? undefined : { seed });
  let kept: Tensor;
  try {
    kept = x.mul(mask);
  } finally {
    mask.dispose();
  }
  try {
    return kept.mul(1 / (1 - p));
  } finally {
    kept.dispose();
  }
}

/** `x · weightᵀ + bias` (then ReLU with `activation: 'relu'`) with weight `[out, in]`, read transposed in place: one engine op. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, opts: { activation?: 'relu' | null } = {}): Tensor {
  assertTensor(x, 'linear needs a Tensor input');
  assertTensor(weight, 'linear needs a Tensor weight');
  if (bias !== null) assertTensor(bias, 'linear: bias must be a Tensor or null');
  const relu = fusedRelu(checkOptions(opts, 'linear options').activation, 'linear');
  return fromHandle(call((e) => e.op_linear(x.handle, weight.handle, bias ? bias.handle : 0, relu)));
}
