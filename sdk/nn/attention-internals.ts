/**
 * What `TransformerEncoderLayer`'s one-call inference path needs from its `MultiHeadAttention`
 * beyond the public API (the mask combination, the seeded call count): registered per instance by
 * the attention module, kept out of the package exports.
 */
import type { Tensor } from '../tensor.js';
import { Linear } from './layers.js';
import type { Module } from './module.js';

/** The rest of an encoder layer, for `AttentionInternals.encoderLayer`. */
export interface EncoderLayerParts {
  /** The MLP's first and second linear layers (plain `Linear`s: see `plainLinear`). */
  linear1: Linear;
  linear2: Linear;
  /** LayerNorms over the last axis: weight and bias (null without affine) and eps. */
  norm1: { weight: Tensor | null; bias: Tensor | null; eps: number };
  norm2: { weight: Tensor | null; bias: Tensor | null; eps: number };
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
