/**
 * What `TransformerEncoderLayer`'s one-call inference path needs from its `MultiHeadAttention`
 * beyond the public API (the mask combination, the seeded call count): registered per instance by
 * the attention module, kept out of the package exports.
 */
import { call } from '../runtime.js';
import { fromHandle, type Tensor } from '../tensor.js';
import { LayerNorm, Linear } from './layers.js';
import type { Module } from './module.js';

/** A LayerNorm over the last axis as the one-call path takes it. */
export interface NormParts {
  /** Weight and bias, null without elementwiseAffine. */
  weight: Tensor | null;
  bias: Tensor | null;
  /** Added to the variance. */
  eps: number;
}

/** The rest of an encoder layer, for `AttentionInternals.encoderLayer`. */
export interface EncoderLayerParts {
  /** The MLP's first and second linear layers (plain `Linear`s: see `plainLinear`). */
  linear1: Linear;
  linear2: Linear;
  /** The LayerNorms (after attention and MLP; before them with `normFirst`). */
  norm1: NormParts;
  norm2: NormParts;
  /** 0 ReLU, 1 exact GELU, 2 tanh GELU. */
  activation: number;
  /** Pre-LN instead of post-LN. */
  normFirst: boolean;
}

/** Per-instance internals of a `MultiHeadAttention`. */
export interface AttentionInternals {
  /**
   * The whole encoder-layer inference forward of `src` in one engine call (bitwise the module-by-
   * module forward), or null when this attention module cannot take that path now.
   */
  encoderLayer(src: Tensor, o: { keyMask?: Tensor | null; attnMask?: Tensor | null; causal?: boolean }, parts: EncoderLayerParts): Tensor | null;
}

/** `MultiHeadAttention` instance → its internals. */
export const attentionInternals = new WeakMap<object, AttentionInternals>();

/** `m` is exactly a `Linear` (no subclass) with no forward hooks, fused activation or activity loss. */
export function plainLinear(m: Module): m is Linear {
  if (!(m instanceof Linear) || Object.getPrototypeOf(m) !== Linear.prototype || m.numForwardHooks > 0) return false;
  const c = m.getConfig() as { activation?: unknown; activityRegularizer?: unknown };
  return !c.activation && !c.activityRegularizer;
}

/** `m` as the one-call path takes it when it is exactly a last-axis `LayerNorm` without hooks, else null. */
export function plainNorm(m: Module): NormParts | null {
  if (Object.getPrototypeOf(m) !== LayerNorm.prototype || m.numForwardHooks > 0 || (m as LayerNorm).normalizedShape.length !== 1) return null;
  const ps = new Map(m.namedParameters()); // weight and bias, or none without elementwiseAffine
  return { weight: ps.get('weight') ?? null, bias: ps.get('bias') ?? null, eps: (m as LayerNorm).opts.eps ?? 1e-5 };
}

/**
 * One engine call for a whole encoder block (`op_encoder_layer_infer`): the packed `[3E, E]`
 * projection `inProj`, self-attention over `heads` heads, `outProj`, and the rest in `p`.
 */
export function encoderLayerCall(src: Tensor, inProj: { weight: Tensor; bias: Tensor | null }, outProj: Linear, p: EncoderLayerParts,
  heads: number, mask: Tensor | null, causal: boolean, scale: number): Tensor {
  const h = (t: Tensor | null) => (t ? t.handle : 0);
  return fromHandle(call((e) => e.op_encoder_layer_infer(src.handle,
    inProj.weight.handle, h(inProj.bias), outProj.weight.handle, h(outProj.bias),
    p.linear1.weight.handle, h(p.linear1.bias), p.linear2.weight.handle, h(p.linear2.bias),
    h(p.norm1.weight), h(p.norm1.bias), p.norm1.eps, h(p.norm2.weight), h(p.norm2.bias), p.norm2.eps,
    heads, p.activation, p.normFirst, h(mask), causal, scale)));
}
