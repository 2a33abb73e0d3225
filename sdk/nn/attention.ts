/**
 * Attention: `scaledDotProductAttention` (batched matmul reading kᵀ in place + one fused masked
 * softmax kernel, one engine call), `MultiHeadAttention` (self and cross, PyTorch's parameter
 * names), and positional encodings (sinusoidal, learned).
 *
 * Masks are keep-masks: 1 = may attend, 0 = blocked (as PyTorch's `scaled_dot_product_attention`
 * with a boolean mask, and Keras). They broadcast to the scores `[batch, heads, queries, keys]`.
 * `keyMask` `[batch, keys]` marks real tokens with 1 and padding with 0 — note that this is the
 * opposite of PyTorch's `key_padding_mask` (where true means "ignore").
 *
 * The attention weights of every head are returned by `scaledDotProductAttention` and
 * `MultiHeadAttention.attend`, and kept after each forward when `keepAttentionWeights` is on
 * (`module.attentionWeights`, `[batch, heads, queries, keys]`), for visualisation.
 */
import { checkBool, checkLengths, checkOptions, checkShape, checkSize, describe } from '../args.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { tensor } from '../creation.js';
import { isGradEnabled } from '../autograd.js';
import { keep } from '../memory.js';
import { call } from '../runtime.js';
import { assertTensor, fromHandle, Tensor } from '../tensor.js';
import * as F from './functional.js';
import { attentionInternals, encoderLayerCall, plainLinear, type EncoderLayerParts } from './attention-internals.js';
import { initialize, type Initializer } from './init.js';
import { Linear } from './layers.js';
import { Module, registerModule } from './module.js';

/** Options of `scaledDotProductAttention`. */
export interface AttentionOptions {
  /** Keep-mask broadcastable to `[..., queries, keys]` (1 attend, 0 blocked); float32 or int32. */
  mask?: Tensor | null;
  /** Block key j for query i when j > i + keys - queries. */
  causal?: boolean;
  /** Score scale; default 1 / sqrt(head dim). */
  scale?: number;
  /** Dropout on the attention weights (applied only when `training`). */
  dropout?: number;
  /** Apply the dropout (default false: no dropout, as in evaluation). */
  training?: boolean;
  /** Seed of the dropout mask (default: the global stream). */
  seed?: number;
}

/** What `scaledDotProductAttention` returns. */
export interface AttentionResult {
  /** `[..., queries, valueDim]` */
  output: Tensor;
  /** `[..., queries, keys]`: the (pre-dropout) attention weights. */
  weights: Tensor;
}

let flattenedCall: { module: Module; lead: number[] } | null = null;
/**
 * The leading shape that `applyToLastAxis` flattened for the call of `m` in progress, else null:
 * eg.privacy's forward hooks use it to split the `[N, features]` rows back per example.
 */
export function flattenedLead(m: Module): number[] | null {
  return flattenedCall !== null && flattenedCall.module === m ? flattenedCall.lead : null;
}

/**
 * Applies a module acting on the last axis (a `Linear`) to `[..., features]` as ONE 2-D product
 * over all leading positions (a rank-3 input would otherwise run one product per batch entry,
 * and its weight gradient would be a per-batch stack summed afterwards).
 */
export function applyToLastAxis(m: Module, x: Tensor): Tensor {
  if (!(m instanceof Module)) throw new ArgumentError(`applyToLastAxis needs a Module, got ${describe(m)}`);
  assertTensor(x, 'applyToLastAxis needs a Tensor');
  if (x.rank <= 2) return m.forward(x);
  const lead = x.shape.slice(0, -1);
  const flat = x.reshape([-1, x.shape[x.rank - 1]]);
  const outer = flattenedCall;
  flattenedCall = { module: m, lead };
  let y: Tensor;
  try {
    y = m.forward(flat);
  } finally {
    flattenedCall = outer;
  }
  const out = y.reshape([...lead, y.shape[1]]);
  flat.dispose();
  y.dispose();
  return out;
}

/** Options carrying an attention mask and causality, checked (returns them, `{}` for undefined). */
function checkMaskOptions<O extends { mask?: Tensor | null; causal?: boolean }>(o: O | undefined, who: string): O {
  const r = checkOptions(o, `${who} options`);
  if (r.mask !== undefined && r.mask !== null) assertTensor(r.mask, `${who} mask must be a Tensor`);
  if (r.causal !== undefined) checkBool(r.causal, `${who} causal`);
  return r;
}

function floatMask(m: Tensor): Tensor {
  return m.dtype === 'float32' ? m : m.cast('float32');
}

/** `softmax(scale · scores)` over the last axis, restricted by a keep-mask and/or causality (one fused kernel). */
export function maskedSoftmax(scores: Tensor, o: { mask?: Tensor | null; causal?: boolean; scale?: number } = {}): Tensor {
  assertTensor(scores, 'maskedSoftmax needs the scores as a Tensor');
  o = checkMaskOptions(o, 'maskedSoftmax');
  if (o.scale !== undefined && !Number.isFinite(o.scale)) throw new ArgumentError(`maskedSoftmax scale must be finite, got ${describe(o.scale)}`);
  const m = o.mask ? floatMask(o.mask) : null;
  try {
    return fromHandle(call((e) => e.op_masked_softmax(scores.handle, m ? m.handle : 0, o.causal ?? false, o.scale ?? 1)));
  } finally {
    if (m && m !== o.mask) m.dispose();
  }
}

/**
 * `softmax(scale · q kᵀ) v` with masks. q `[..., Tq, D]`, k `[..., Tk, D]`, v `[..., Tk, Dv]`
 * (leading dims broadcast, typically `[batch, heads]`). Without dropout this is one engine call.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions = {}): AttentionResult {
  assertTensor(q, 'scaledDotProductAttention needs the queries as a Tensor');
  assertTensor(k, 'scaledDotProductAttention needs the keys as a Tensor');
  assertTensor(v, 'scaledDotProductAttention needs the values as a Tensor');
  o = checkMaskOptions(o, 'scaledDotProductAttention');
  const d = q.shape[q.rank - 1];
  const scale = o.scale ?? 1 / Math.sqrt(d);
  if (!Number.isFinite(scale)) throw new ArgumentError(`attention scale must be finite, got ${describe(o.scale)}`);
  const p = o.dropout ?? 0;
  if (!(typeof p === 'number' && p >= 0 && p < 1)) throw new ArgumentError(`attention dropout must be in [0, 1), got ${describe(p)}`);
  if (p > 0 && o.training) {
    const scores = q.matmulT(k, false, true);
    const weights = maskedSoftmax(scores, { mask: o.mask, causal: o.causal, scale });
    scores.dispose();
    const dropped = F.dropout(weights, p, true, o.seed);
    const output = dropped.matmul(v);
    dropped.dispose();
    return { output, weights };
  }
  const m = o.mask ? floatMask(o.mask) : null;
  try {
    const [ho, hw] = call((e) => e.op_attention(q.handle, k.handle, v.handle, m ? m.handle : 0, o.causal ?? false, scale));
    return { output: fromHandle(ho), weights: fromHandle(hw) };
  } finally {
    if (m && m !== o.mask) m.dispose();
  }
}

/** `[B, Tk]` keep-mask (1 = real token) from sequence lengths. */
export function keyMaskFromLengths(lengths: ArrayLike<number>, maxLen: number): Tensor {
  checkLengths(lengths, 'keyMaskFromLengths');
  checkSize(maxLen, 'keyMaskFromLengths maxLen');
  const m = new Float32Array(lengths.length * maxLen);
  for (let b = 0; b < lengths.length; b++) {
    const l = lengths[b];
    if (!Number.isInteger(l) || l < 0 || l > maxLen) throw new ArgumentError(`length ${l} must be an integer in [0, ${maxLen}]`);
    m.fill(1, b * maxLen, b * maxLen + l);
  }
  return tensor(m, [lengths.length, maxLen]);
}

/** `[T, T]` lower-triangular keep-mask (query i may attend keys 0..i). */
export function causalMask(t: number): Tensor {
  checkSize(t, 'causalMask size');
  checkSize(t * t, 'causalMask elements');
  const m = new Float32Array(t * t);
  for (let i = 0; i < t; i++) m.fill(1, i * t, i * t + i + 1);
  return tensor(m, [t, t]);
}

/** Combines a `[B, Tk]` key mask and an attention mask (`[Tq, Tk]`, `[B, Tq, Tk]` or 4-D) into one broadcastable keep-mask. */
function combineMasks(keyMask: Tensor | null | undefined, attnMask: Tensor | null | undefined): { mask: Tensor | null; owned: Tensor[] } {
  const owned: Tensor[] = [];
  let km: Tensor | null = null;
  if (keyMask) {
    if (keyMask.rank !== 2) throw new ShapeError(`keyMask must be [batch, keys] (1 = real token, 0 = padding), got [${keyMask.shape.join(', ')}]`);
    const f = floatMask(keyMask);
    if (f !== keyMask) owned.push(f);
    km = f.reshape([f.shape[0], 1, 1, f.shape[1]]);
    owned.push(km);
  }
  let am: Tensor | null = null;
  if (attnMask) {
    const f = floatMask(attnMask);
    if (f !== attnMask) owned.push(f);
    if (f.rank === 3) {
      am = f.reshape([f.shape[0], 1, f.shape[1], f.shape[2]]);
      owned.push(am);
    } else if (f.rank === 2 || f.rank === 4) am = f;
    else throw new ShapeError(`attnMask must be [queries, keys], [batch, queries, keys] or [batch, heads, queries, keys], got [${attnMask.shape.join(', ')}]`);
  }
  if (km && am) {
    const both = km.mul(am);
    owned.push(both);
    return { mask: both, owned };
  }
  return { mask: km ?? am, owned };
}

/** Construction options of `MultiHeadAttention`. */
export interface MultiHeadAttentionOptions {
  /** Key feature size (default embedDim). */
  kdim?: number;
  /** Value feature size (default embedDim). */
  vdim?: number;
  /** Learn the input projections' bias `in_proj_bias` and `out_proj.bias` (default true). */
  bias?: boolean;
  /** Dropout on the attention weights (training only). */
  dropout?: number;
  /** Keep the last forward's attention weights in `attentionWeights`. */
  keepAttentionWeights?: boolean;
  /** Initializer of the projection weights (default `'glorotUniform'`, as PyTorch's xavier_uniform). */
  weightInit?: Initializer;
  /** Seed for the initial weights and the dropout masks (default: the global stream). */
  seed?: number;
}

/** Per-call options of `MultiHeadAttention.forward` and `attend`: keep-masks (1 attend, 0 blocked). */
export interface MultiHeadForwardOptions {
  /** `[batch, keys]`: 1 = real token, 0 = padding. */
  keyMask?: Tensor | null;
  /** Keep-mask `[queries, keys]`, `[batch, queries, keys]` or `[batch, heads, queries, keys]`. */
  attnMask?: Tensor | null;
  /** Block each query from later keys (autoregressive attention). */
  causal?: boolean;
}

/**
 * Multi-head attention (PyTorch's `nn.MultiheadAttention` with `batch_first=True`): inputs
 * `[batch, length, features]`. Parameters are PyTorch's: `in_proj_weight [3E, E]` and
 * `in_proj_bias [3E]` when keys and values have `embedDim` features (else `q_proj_weight`,
 * `k_proj_weight`, `v_proj_weight`), and `out_proj` (a Linear).
 */
export class MultiHeadAttention extends Module {
  /** Model width E: query features and output features. */
  readonly embedDim: number;
  /** Attention heads; divides `embedDim`. */
  readonly numHeads: number;
  /** Features per head, `embedDim / numHeads`. */
  readonly headDim: number;
  /** Key features (default `embedDim`). */
  readonly kdim: number;
  /** Value features (default `embedDim`). */
  readonly vdim: number;
  /** Store each forward's weights in `attentionWeights`. */
  keepAttentionWeights: boolean;
  /**
   * Called with each input projection's input and output right after it is computed (`part` -1:
   * the packed `[B, T, 3E]` self-attention projection; 0, 1, 2: the query, key, value ones), so
   * DP's per-example gradients (eg.privacy) can capture them; null (nothing called) otherwise.
   */
  projectionTap: ((part: number, input: Tensor, output: Tensor) => void) | null = null;
  #weights: Tensor | null = null;
  #calls = 0;
  readonly #opts: MultiHeadAttentionOptions;
  /** Seeded draws so far, kept in checkpoints so a resumed run draws the same masks. */
  override getExtraState(): { calls: number } {
    return { calls: this.#calls };
  }
  override setExtraState(s: unknown): void {
    this.#calls = this.readCallCount(s);
  }

  constructor(embedDim: number, numHeads: number, opts: MultiHeadAttentionOptions = {}) {

    checkOptions(opts, 'MultiHeadAttention options');
    super();
    if (!Number.isInteger(embedDim) || embedDim < 1 || !Number.isInteger(numHeads) || numHeads < 1) {
      throw new ArgumentError(`MultiHeadAttention needs positive integer embedDim and numHeads, got ${embedDim} and ${numHeads}`);
    }
    if (embedDim % numHeads !== 0) throw new ArgumentError(`MultiHeadAttention: embedDim (${embedDim}) must be divisible by numHeads (${numHeads})`);
    const p = opts.dropout ?? 0;
    if (!(p >= 0 && p < 1)) throw new ArgumentError(`MultiHeadAttention dropout must be in [0, 1), got ${p}`);
    this.embedDim = embedDim;
    this.numHeads = numHeads;
    this.headDim = embedDim / numHeads;
    this.kdim = opts.kdim ?? embedDim;
    this.vdim = opts.vdim ?? embedDim;
    this.keepAttentionWeights = opts.keepAttentionWeights ?? false;
    this.#opts = opts;
    const e = embedDim;
    const init = opts.weightInit ?? 'glorotUniform';
    const s = (k: number) => (opts.seed === undefined ? undefined : opts.seed * 7 + k);
    if (this.#packed) {
      // PyTorch initialises the packed [3E, E] matrix with xavier_uniform over its full shape.
      this.registerParameter('in_proj_weight', initialize(init, [3 * e, e], e, 3 * e, s(0)));
    } else {
      this.registerParameter('q_proj_weight', initialize(init, [e, e], e, e, s(1)));
      this.registerParameter('k_proj_weight', initialize(init, [e, this.kdim], this.kdim, e, s(2)));
      this.registerParameter('v_proj_weight', initialize(init, [e, this.vdim], this.vdim, e, s(3)));
    }
    if (opts.bias ?? true) this.registerParameter('in_proj_bias', initialize('zeros', [3 * e], e, e));
    this.registerModule('out_proj', new Linear(e, e, { bias: opts.bias ?? true, seed: s(4), weightInit: init }));
    attentionInternals.set(this, { encoderLayer: (src, o, parts) => this.#encoderLayer(src, o, parts) });
  }

  /** See `AttentionInternals.encoderLayer`: the caller has checked that nothing records. */
  #encoderLayer(src: Tensor, o: MultiHeadForwardOptions, p: EncoderLayerParts): Tensor | null {
    const outProj = this.getModule('out_proj');
    if (!this.#packed || this.training || this.keepAttentionWeights || this.projectionTap !== null || this.numForwardHooks > 0 || !plainLinear(outProj)) return null;
    const { mask, owned } = combineMasks(o.keyMask, o.attnMask);
    try {
      if (this.#opts.seed !== undefined) this.#calls++; // as the module-by-module forward counts
      const inProj = { weight: this.param('in_proj_weight'), bias: this.hasParam('in_proj_bias') ? this.param('in_proj_bias') : null };
      return encoderLayerCall(src, inProj, outProj, p, this.numHeads, mask, o.causal ?? false, 1 / Math.sqrt(this.headDim));
    } finally {
      for (const t of owned) t.dispose();
    }
  }

  get #packed(): boolean {
    return this.kdim === this.embedDim && this.vdim === this.embedDim;
  }

  /** The weights of the last forward `[batch, heads, queries, keys]` (with `keepAttentionWeights`), else null. */
  get attentionWeights(): Tensor | null {
    return this.#weights;
  }

  /** Rows `[i·E, (i+1)·E)` of the packed projection (a view), or the separate matrix. */
  #projWeight(i: number): Tensor {
    const e = this.embedDim;
    if (this.#packed) return this.param('in_proj_weight').slice([i * e, 0], [(i + 1) * e, e]);
    return this.param(['q_proj_weight', 'k_proj_weight', 'v_proj_weight'][i]);
  }
  #projBias(i: number): Tensor | null {
    if (!this.hasParam('in_proj_bias')) return null;
    const e = this.embedDim;
    return this.param('in_proj_bias').slice([i * e], [(i + 1) * e]);
  }

  /** `[B, T, E]` -> `[B, heads, T, headDim]` (a view). */
  #heads(x: Tensor): Tensor {
    const [b, t] = x.shape;
    const r = x.reshape([b, t, this.numHeads, this.headDim]);
    const p = r.transpose(1, 2);
    r.dispose();
    return p;
  }

  /** Output `[batch, queries, embedDim]` and the weights of every head `[batch, heads, queries, keys]`. */
  attend(query: Tensor, key?: Tensor | null, value?: Tensor | null, o: MultiHeadForwardOptions = {}): AttentionResult {
    return this.#attend(query, key, value, o, true) as AttentionResult;
  }

  /** `attend`; without `wantWeights` the weights may be skipped (null) by the fused inference path. */
  #attend(query: Tensor, key: Tensor | null | undefined, value: Tensor | null | undefined, o: MultiHeadForwardOptions, wantWeights: boolean): { output: Tensor; weights: Tensor | null } {
    assertTensor(query, 'MultiHeadAttention needs a Tensor query');
    for (const t of [key, value]) if (t !== undefined && t !== null) assertTensor(t, 'MultiHeadAttention: key and value must be Tensors');
    const k = key ?? query;
    const v = value ?? k;
    const e = this.embedDim;
    for (const [t, n, d] of [[query, 'query', e], [k, 'key', this.kdim], [v, 'value', this.vdim]] as const) {
      if (t.rank !== 3 || t.shape[2] !== d) throw new ShapeError(`MultiHeadAttention: ${n} must be [batch, length, ${d}], got [${t.shape.join(', ')}]`);
    }
    if (k.shape[0] !== query.shape[0] || v.shape[0] !== query.shape[0] || k.shape[1] !== v.shape[1]) {
      throw new ShapeError(`MultiHeadAttention: query [${query.shape.join(', ')}], key [${k.shape.join(', ')}] and value [${v.shape.join(', ')}] do not fit together`);
    }
    const temps: Tensor[] = [];
    const track = <T extends Tensor>(t: T): T => {
      temps.push(t);
      return t;
    };
    const [b, tq] = query.shape;
    let q: Tensor;
    let kh: Tensor;
    let vh: Tensor;
    if (k === query && v === query && this.#packed) {
      // Self-attention: one projection to [B, T, 3E] (the engine's linear takes [..., in] as one
      // 2-D product), split into heads with views.
      const y = track(F.linear(query, this.param('in_proj_weight'), this.hasParam('in_proj_bias') ? this.param('in_proj_bias') : null));
      this.projectionTap?.(-1, query, y);
      if (!wantWeights && !this.keepAttentionWeights && !(this.training && (this.#opts.dropout ?? 0) > 0) && !(isGradEnabled() && y.requiresGrad)) {
        // Inference: heads read in place from y, merged output written directly (one engine
        // call, bitwise the unfused path below, which counts a seeded draw per call: so does this).
        try {
          const { mask, owned } = combineMasks(o.keyMask, o.attnMask);
          temps.push(...owned);
          if (this.#opts.seed !== undefined) this.#calls++;
          const scale = 1 / Math.sqrt(this.headDim);
          const merged = track(fromHandle(call((en) => en.op_packed_self_attention(y.handle, this.numHeads, mask ? mask.handle : 0, o.causal ?? false, scale))));
          return { output: applyToLastAxis(this.getModule('out_proj'), merged), weights: null };
        } finally {
          for (const t of temps) t.dispose();
        }
      }
      const r = track(y.reshape([b, tq, 3, this.numHeads, this.headDim]));
      const p = track(r.permute([2, 0, 3, 1, 4]));
      const part = (i: number) => track(p.slice([i, 0, 0, 0, 0], [i + 1, b, this.numHeads, tq, this.headDim]));
      [q, kh, vh] = [part(0), part(1), part(2)];
    } else {
      const proj = (x: Tensor, i: number) => {
        const w = this.#projWeight(i);
        if (this.#packed) track(w); // a view of in_proj_weight (the separate matrices are parameters: keep them)
        const bias = this.#projBias(i);
        if (bias) track(bias);
        const y = track(F.linear(x, w, bias));
        this.projectionTap?.(i, x, y);
        return track(this.#heads(y));
      };
      q = proj(query, 0);
      kh = proj(k, 1);
      vh = proj(v, 2);
    }
    const { mask, owned } = combineMasks(o.keyMask, o.attnMask);
    temps.push(...owned);
    const mask5 = mask && q.rank === 5 ? track(mask.expandDims(0)) : mask;
    const seed = this.#opts.seed === undefined ? undefined : this.#opts.seed * 1_000_003 + this.#calls++;
    const att = scaledDotProductAttention(q, kh, vh, { mask: mask5, causal: o.causal, dropout: this.#opts.dropout, training: this.training, seed });
    track(att.output);
    // [(1,) B, H, Tq, D] -> [B, Tq, H, D] -> [B, Tq, E]
    const merged = track(att.output.rank === 5 ? att.output.permute([0, 1, 3, 2, 4]) : att.output.permute([0, 2, 1, 3]));
    const flat = track(merged.reshape([b, tq, e]));
    const output = applyToLastAxis(this.getModule('out_proj'), flat);
    let weights = att.weights;
    if (weights.rank === 5) {
      weights = weights.reshape(weights.shape.slice(1));
      att.weights.dispose();
    }
    for (const t of temps) t.dispose();
    if (this.keepAttentionWeights) {
      this.#weights?.dispose();
      this.#weights = keep(weights.detach());
    }
    return { output, weights };
  }

  /** Attention output `[batch, queries, embedDim]`; `key`/`value` default to `query` (self-attention). */
  forward(query: Tensor, key?: Tensor | null, value?: Tensor | null, o: MultiHeadForwardOptions = {}): Tensor {
    const r = this.#attend(query, key, value, o, false);
    r.weights?.dispose();
    return r.output;
  }

  override dispose(): void {
    this.#weights?.dispose();
    this.#weights = null;
    super.dispose();
  }

  override getConfig(): Record<string, unknown> {
    const { seed: _s, ...rest } = this.#opts;
    return { embedDim: this.embedDim, numHeads: this.numHeads, ...rest, keepAttentionWeights: this.keepAttentionWeights };
  }
}

// ------------------------------------------------------------------------------------- positions

/**
 * sin and cos in float64 from IEEE arithmetic only (Cody-Waite reduction by π/2, Taylor series
 * to 1e-17), so the table is bit-for-bit the same in every JS engine (`Math.sin` is not
 * guaranteed to be).
 */
function detSinCos(x: number): [number, number] {
  const PIO2_HI = 1.5707963267341256;
  const PIO2_LO = 6.077100506506192e-11;
  const k = Math.round(x / (PIO2_HI + PIO2_LO));
  const r = (x - k * PIO2_HI) - k * PIO2_LO;
  const r2 = r * r;
  let s = 0;
  let c = 0;
  let ts = r;
  let tc = 1;
  for (let n = 1; n < 24; n += 2) {
    s += ts;
    c += tc;
    ts *= -r2 / ((n + 1) * (n + 2));
    tc *= -r2 / (n * (n + 1));
  }
  switch (((k % 4) + 4) % 4) {
    case 0: return [s, c];
    case 1: return [c, -s];
    case 2: return [-s, -c];
    default: return [-c, s];
  }
}

/** exp in float64 from IEEE arithmetic only (for the frequencies of the sinusoidal table). */
function detExp(x: number): number {
  const LN2 = 0.6931471805599453;
  const k = Math.round(x / LN2);
  const r = x - k * LN2;
  let sum = 1;
  let term = 1;
  for (let n = 1; n < 30; n++) {
    term *= r / n;
    sum += term;
  }
  let p = 1;
  const base = k < 0 ? 0.5 : 2;
  for (let i = 0; i < Math.abs(k); i++) p *= base;
  return sum * p;
}

/**
 * The sinusoidal position table of "Attention Is All You Need", `[maxLen, dim]`:
 * `PE[p, 2i] = sin(p / 10000^(2i/dim))`, `PE[p, 2i+1] = cos(...)`. Identical in every runtime.
 */
export function sinusoidalTable(maxLen: number, dim: number): Float32Array {
  checkSize(maxLen, 'sinusoidalTable maxLen');
  checkSize(dim, 'sinusoidalTable dim');
  checkSize(maxLen * dim, 'sinusoidalTable elements');
  const out = new Float32Array(maxLen * dim);
  const ln10k = 9.210340371976184;
  for (let i = 0; i < dim; i += 2) {
    const freq = detExp((-ln10k * i) / dim);
    for (let p = 0; p < maxLen; p++) {
      const [s, c] = detSinCos(p * freq);
      out[p * dim + i] = s;
      if (i + 1 < dim) out[p * dim + i + 1] = c;
    }
  }
  return out;
}

/** Adds the fixed sinusoidal table to `[batch, time, dim]` inputs (positions `offset..`). No parameters. */
export class SinusoidalPositionalEncoding extends Module {
  #table: Tensor;
  /**
   * @param dim - Feature size (the last input dimension).
   * @param maxLen - Most positions supported (default 2048); longer inputs throw ShapeError.
   */
  constructor(readonly dim: number, readonly maxLen = 2048) {
    super();
    checkSize(dim, 'SinusoidalPositionalEncoding dim', 1);
    checkSize(maxLen, 'SinusoidalPositionalEncoding maxLen', 1);
    checkShape([maxLen, dim], 'SinusoidalPositionalEncoding table');
    this.#table = keep(tensor(sinusoidalTable(maxLen, dim), [maxLen, dim]));
  }
  forward(x: Tensor, offset = 0): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    const t = x.shape[x.rank - 2];
    if (x.rank < 2 || x.shape[x.rank - 1] !== this.dim) throw new ShapeError(`SinusoidalPositionalEncoding expects [..., time, ${this.dim}], got [${x.shape.join(', ')}]`);
    if (offset + t > this.maxLen) throw new ShapeError(`SinusoidalPositionalEncoding: positions up to ${offset + t} exceed maxLen ${this.maxLen}`);
    const pe = this.#table.slice([offset, 0], [offset + t, this.dim]);
    const y = x.add(pe);
    pe.dispose();
    return y;
  }
  override dispose(): void {
    this.#table.dispose();
    super.dispose();
  }
  override getConfig() {
    return { dim: this.dim, maxLen: this.maxLen };
  }
}

/** A trained position table `weight [maxLen, dim]` added to `[batch, time, dim]` inputs (GPT-style). */
export class LearnedPositionalEmbedding extends Module {
  /**
   * @param maxLen - Most positions supported; longer inputs throw ShapeError.
   * @param dim - Feature size (the last input dimension).
   * @param opts - `init` of the table (default `{ normal: [0, 0.02] }`, GPT-2's) and its `seed`.
   */
  constructor(readonly maxLen: number, readonly dim: number, readonly opts: { init?: Initializer; seed?: number } = {}) {
    checkOptions(opts, 'LearnedPositionalEmbedding options');
    super();
    if (!Number.isInteger(dim) || dim < 1 || !Number.isInteger(maxLen) || maxLen < 1) throw new ArgumentError(`LearnedPositionalEmbedding needs positive integer maxLen and dim, got ${maxLen}, ${dim}`);
    this.registerParameter('weight', initialize(opts.init ?? { normal: [0, 0.02] }, [maxLen, dim], maxLen, dim, opts.seed));
  }
  /** The embeddings of positions `offset..offset+length` `[length, dim]` (a view). */
  positions(length: number, offset = 0): Tensor {
    if (offset + length > this.maxLen) throw new ShapeError(`LearnedPositionalEmbedding: positions up to ${offset + length} exceed maxLen ${this.maxLen}`);
    return this.param('weight').slice([offset, 0], [offset + length, this.dim]);
  }
  forward(x: Tensor, offset = 0): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    if (x.rank < 2 || x.shape[x.rank - 1] !== this.dim) throw new ShapeError(`LearnedPositionalEmbedding expects [..., time, ${this.dim}], got [${x.shape.join(', ')}]`);
    const pe = this.positions(x.shape[x.rank - 2], offset);
    const y = x.add(pe);
    pe.dispose();
    return y;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { maxLen: this.maxLen, dim: this.dim, ...rest };
  }
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('MultiHeadAttention', (c: Cfg) => new MultiHeadAttention(c.embedDim, c.numHeads, c));
registerModule('SinusoidalPositionalEncoding', (c: Cfg) => new SinusoidalPositionalEncoding(c.dim, c.maxLen));
registerModule('LearnedPositionalEmbedding', (c: Cfg) => new LearnedPositionalEmbedding(c.maxLen, c.dim, c));
