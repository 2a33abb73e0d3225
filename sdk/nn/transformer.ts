/**
 * Transformer blocks.
 *
 * - `TransformerEncoderLayer` / `TransformerEncoder`: PyTorch's modules (batch first), same
 *   parameter names (`self_attn.in_proj_weight`, `linear1`, `linear2`, `norm1`, `norm2`), post-LN
 *   by default or pre-LN with `normFirst`.
 * - `CausalSelfAttention`, `GPTBlock` and `GPT`: a decoder-only (GPT-2 style) model with pre-LN
 *   blocks, GELU MLP and dropout, named like nanoGPT (`transformer.wte`, `transformer.h.0.attn.c_attn`,
 *   `lm_head`...), so nanoGPT checkpoints exported to safetensors load as they are.
 *
 * Every attention module can keep the weights of every head from its last forward
 * (`keepAttentionWeights`), for visualisation: `gpt.attentionMaps()`.
 */
import { checkSize, describe, MAX_LAYERS, checkOptions } from '../args.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { isGradEnabled } from '../autograd.js';
import { keep } from '../memory.js';
import { call } from '../runtime.js';
import { assertTensor, fromHandle, Tensor } from '../tensor.js';
import { Dropout, Embedding, GELU, LayerNorm, Linear, ReLU } from './layers.js';
import { Module, moduleFromConfig, registerModule, type ModuleConfig } from './module.js';
import { applyToLastAxis, MultiHeadAttention, scaledDotProductAttention, type MultiHeadForwardOptions } from './attention.js';
import { attentionInternals, encoderLayerCall, plainLinear, plainNorm } from './attention-internals.js';

/** Options of `TransformerEncoderLayer` and `TransformerEncoder.create` (PyTorch's keyword arguments). */
export interface TransformerEncoderLayerOptions {
  /** Hidden size of the MLP (default 4 · dModel; PyTorch's default is 2048). */
  dimFeedforward?: number;
  /** Dropout after attention, in the MLP and on the attention weights, training only (default 0.1, as PyTorch). */
  dropout?: number;
  /** MLP activation (default `'relu'`, as PyTorch). */
  activation?: 'relu' | 'gelu';
  /** Pre-LN (LayerNorm before attention and MLP) instead of PyTorch's default post-LN. */
  normFirst?: boolean;
  /** LayerNorm eps (default 1e-5). */
  layerNormEps?: number;
  /** Biases in the attention projections and the MLP (default true). */
  bias?: boolean;
  /** Keep the last forward's attention weights in `selfAttn.attentionWeights`. */
  keepAttentionWeights?: boolean;
  /** Seed for the initial weights and the dropout masks (default: the global stream). */
  seed?: number;
}

function seeded(seed: number | undefined, k: number): number | undefined {
  return seed === undefined ? undefined : seed * 31 + k;
}

/** One Transformer encoder layer: self-attention and an MLP, each with a residual connection. */
export class TransformerEncoderLayer extends Module {
  readonly #opts: TransformerEncoderLayerOptions;
  /**
   * @param dModel - Model width (features of the `[batch, time, dModel]` input).
   * @param nHead - Attention heads; must divide `dModel`.
   * @param opts - MLP size, dropout, activation, pre-/post-LN, eps, bias, seed.
   */
  constructor(readonly dModel: number, readonly nHead: number, opts: TransformerEncoderLayerOptions = {}) {
    checkOptions(opts, 'TransformerEncoderLayer options');
    checkSize(dModel, 'TransformerEncoderLayer dModel', 1);
    checkSize(nHead, 'TransformerEncoderLayer nHead', 1);
    super();
    this.#opts = opts;
    const ff = opts.dimFeedforward ?? 4 * dModel;
    const p = opts.dropout ?? 0.1;
    const eps = opts.layerNormEps ?? 1e-5;
    const bias = opts.bias ?? true;
    this.registerModule('self_attn', new MultiHeadAttention(dModel, nHead, { dropout: p, bias, seed: seeded(opts.seed, 1), keepAttentionWeights: opts.keepAttentionWeights }));
    this.registerModule('linear1', new Linear(dModel, ff, { bias, seed: seeded(opts.seed, 2) }));
    this.registerModule('dropout', new Dropout(p, seeded(opts.seed, 3)));
    this.registerModule('linear2', new Linear(ff, dModel, { bias, seed: seeded(opts.seed, 4) }));
    this.registerModule('norm1', new LayerNorm(dModel, { eps }));
    this.registerModule('norm2', new LayerNorm(dModel, { eps }));
    this.registerModule('dropout1', new Dropout(p, seeded(opts.seed, 5)));
    this.registerModule('dropout2', new Dropout(p, seeded(opts.seed, 6)));
    this.registerModule('activation', (opts.activation ?? 'relu') === 'gelu' ? new GELU() : new ReLU());
  }
  /** The self-attention submodule `self_attn`. */
  get selfAttn(): MultiHeadAttention {
    return this.getModule('self_attn') as MultiHeadAttention;
  }
  /**
   * The dropout submodule `name` applied to `x`, which it consumes. An evaluation-mode Dropout
   * without hooks would return an exact copy: `x` itself is returned instead (one op less).
   */
  #drop(name: string, x: Tensor): Tensor {
    const m = this.getModule(name);
    if (m instanceof Dropout && !m.training && m.numForwardHooks === 0) return x;
    const y = m.forward(x);
    x.dispose();
    return y;
  }
  #sa(x: Tensor, o: MultiHeadForwardOptions): Tensor {
    return this.#drop('dropout1', this.selfAttn.forward(x, x, x, o));
  }
  #ff(x: Tensor): Tensor {
    const h1 = applyToLastAxis(this.getModule('linear1'), x);
    const h2 = this.getModule('activation').forward(h1);
    h1.dispose();
    const h3 = this.#drop('dropout', h2);
    const h4 = applyToLastAxis(this.getModule('linear2'), h3);
    h3.dispose();
    return this.#drop('dropout2', h4);
  }
  /**
   * The whole forward in one engine call when nothing records, the layer is in evaluation mode
   * and every part is the plain module it built (no hooks, adapters or active dropout): bitwise
   * the module-by-module forward, without its ~30 calls from JS. Null where that does not hold.
   */
  #inference(src: Tensor, o: MultiHeadForwardOptions): Tensor | null {
    if (this.training || src.rank !== 3 || src.shape[2] !== this.dModel || isGradEnabled()) return null;
    const [linear1, linear2, act] = ['linear1', 'linear2', 'activation'].map((n) => this.getModule(n));
    if (!plainLinear(linear1) || !plainLinear(linear2) || act.numForwardHooks > 0) return null;
    const actProto = Object.getPrototypeOf(act);
    const activation = actProto === ReLU.prototype ? 0 : actProto === GELU.prototype ? ((act as GELU).approximate ? 2 : 1) : -1;
    if (activation < 0) return null;
    for (const n of ['dropout', 'dropout1', 'dropout2']) {
      const d = this.getModule(n);
      if (!(d instanceof Dropout) || d.training || d.numForwardHooks > 0) return null;
    }
    const [norm1, norm2] = [plainNorm(this.getModule('norm1')), plainNorm(this.getModule('norm2'))];
    if (!norm1 || !norm2) return null;
    const parts = { linear1, linear2, norm1, norm2, activation, normFirst: this.#opts.normFirst ?? false };
    return attentionInternals.get(this.selfAttn)?.encoderLayer(src, o, parts) ?? null;
  }
  /** `src` `[batch, length, dModel]`; masks as in `MultiHeadAttention`. */
  forward(src: Tensor, o: MultiHeadForwardOptions = {}): Tensor {
    assertTensor(src, `${this.className} needs a Tensor input`);
    const fused = this.#inference(src, o);
    if (fused) return fused;
    const n1 = this.getModule('norm1');
    const n2 = this.getModule('norm2');
    const add = (a: Tensor, b: Tensor) => {
      const r = a.add(b);
      b.dispose();
      return r;
    };
    if (this.#opts.normFirst) {
      const a = n1.forward(src);
      const x = add(src, this.#sa(a, o));
      a.dispose();
      const b = n2.forward(x);
      const y = add(x, this.#ff(b));
      b.dispose();
      x.dispose();
      return y;
    }
    const s = add(src, this.#sa(src, o));
    const x = n1.forward(s);
    s.dispose();
    const t = add(x, this.#ff(x));
    const y = n2.forward(t);
    x.dispose();
    t.dispose();
    return y;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.#opts;
    return { dModel: this.dModel, nHead: this.nHead, ...rest };
  }
}

/** A stack of encoder layers (`layers.0`, `layers.1`, ...) and an optional final `norm`. */
export class TransformerEncoder extends Module {
  constructor(layers: TransformerEncoderLayer[], norm?: LayerNorm | null) {
    super();
    if (!Array.isArray(layers) || layers.length === 0) throw new ArgumentError('TransformerEncoder needs at least one layer');
    this.registerModule('layers', new ModuleList(layers));
    if (norm) this.registerModule('norm', norm);
  }
  /** `numLayers` fresh layers built like `TransformerEncoderLayer(dModel, nHead, opts)` (each its own seed). */
  static create(numLayers: number, dModel: number, nHead: number, opts: TransformerEncoderLayerOptions & { finalNorm?: boolean } = {}): TransformerEncoder {
    const { finalNorm, ...o } = opts;
    checkSize(numLayers, 'TransformerEncoder numLayers', 1);
    if (numLayers > MAX_LAYERS) throw new ArgumentError(`TransformerEncoder numLayers must be at most ${MAX_LAYERS}, got ${numLayers}`);
    const layers = Array.from({ length: numLayers }, (_, i) => new TransformerEncoderLayer(dModel, nHead, { ...o, seed: seeded(o.seed, 100 + i) }));
    return new TransformerEncoder(layers, finalNorm ? new LayerNorm(dModel, { eps: o.layerNormEps }) : null);
  }
  /** The encoder layers, in order. */
  get layers(): TransformerEncoderLayer[] {
    return (this.getModule('layers') as ModuleList).children() as TransformerEncoderLayer[];
  }
  forward(src: Tensor, o: MultiHeadForwardOptions = {}): Tensor {
    assertTensor(src, `${this.className} needs a Tensor input`);
    let x = src;
    for (const l of this.layers) {
      const y = l.forward(x, o);
      if (x !== src) x.dispose();
      x = y;
    }
    if (this.namedChildren().some(([n]) => n === 'norm')) {
      const y = this.getModule('norm').forward(x);
      if (x !== src) x.dispose();
      x = y;
    }
    return x;
  }
  override getConfig() {
    const hasNorm = this.namedChildren().some(([n]) => n === 'norm');
    return { layers: this.layers.map((l) => l.toConfig()), norm: hasNorm ? this.getModule('norm').toConfig() : null };
  }
}

/** A list of modules named `0`, `1`, ... with no forward of its own (PyTorch's `nn.ModuleList`). */
export class ModuleList extends Module {
  constructor(modules: Module[] = []) {
    super();
    if (!Array.isArray(modules)) throw new ArgumentError(`ModuleList needs an array of modules, got ${describe(modules)}`);
    modules.forEach((m, i) => this.registerModule(String(i), m));
  }
  /** Number of modules. */
  get length(): number {
    return this.children().length;
  }
  /** The module at index `i` (throws if there is none). */
  at(i: number): Module {
    return this.getModule(String(i));
  }
  forward(): Tensor {
    throw new ArgumentError('ModuleList has no forward(): iterate over its modules');
  }
  override getConfig() {
    return { modules: this.children().map((m) => m.toConfig()) };
  }
}

// ------------------------------------------------------------------------------------- GPT

/** Options of `GPTBlock`, `CausalSelfAttention` and `GPTMLP`. */
export interface GPTBlockOptions {
  /** MLP hidden size = mlpRatio · nEmbd (default 4). */
  mlpRatio?: number;
  /** Dropout on the attention weights and the residual branches, training only (default 0). */
  dropout?: number;
  /** Biases in the linear layers (default true). */
  bias?: boolean;
  /** Keep the last forward's attention weights in `attentionWeights`. */
  keepAttentionWeights?: boolean;
  /** Seed for the initial weights and the dropout masks (default: the global stream). */
  seed?: number;
}

/** Counts a `CausalSelfAttention` forward as its module forward does (the seeded dropout stream), for `GPTBlock`'s one-call path. */
const countCausalCall = new WeakMap<object, () => void>();

/** Causal multi-head self-attention with nanoGPT's names: `c_attn` (E → 3E) and `c_proj` (E → E). */
export class CausalSelfAttention extends Module {
  /** Features per head, `nEmbd / nHead`. */
  readonly headDim: number;
  /** Store each forward's weights in `attentionWeights`. */
  keepAttentionWeights: boolean;
  #weights: Tensor | null = null;
  #calls = 0;
  /** Seeded draws so far, kept in checkpoints so a resumed run draws the same masks. */
  override getExtraState(): { calls: number } {
    return { calls: this.#calls };
  }
  override setExtraState(s: unknown): void {
    this.#calls = this.readCallCount(s);
  }
  /**
   * @param nEmbd - Model width (features of the `[batch, time, nEmbd]` input); a multiple of `nHead`.
   * @param nHead - Attention heads.
   * @param opts - Dropout, bias, keepAttentionWeights, seed.
   */
  constructor(readonly nEmbd: number, readonly nHead: number, readonly opts: GPTBlockOptions = {}) {
    checkOptions(opts, 'CausalSelfAttention options');
    super();
    if (!Number.isInteger(nEmbd) || !Number.isInteger(nHead) || nHead < 1 || nEmbd % nHead !== 0) {
      throw new ArgumentError(`CausalSelfAttention: nEmbd (${nEmbd}) must be a multiple of nHead (${nHead})`);
    }
    this.headDim = nEmbd / nHead;
    this.keepAttentionWeights = opts.keepAttentionWeights ?? false;
    const bias = opts.bias ?? true;
    this.buildOrFree(() => {
      this.registerModule('c_attn', new Linear(nEmbd, 3 * nEmbd, { bias, weightInit: { normal: [0, 0.02] }, seed: seeded(opts.seed, 1) }));
      this.registerModule('c_proj', new Linear(nEmbd, nEmbd, { bias, weightInit: { normal: [0, 0.02] }, seed: seeded(opts.seed, 2) }));
      this.registerModule('resid_dropout', new Dropout(opts.dropout ?? 0, seeded(opts.seed, 3)));
    });
    countCausalCall.set(this, () => {
      if (this.opts.seed !== undefined) this.#calls++;
    });
  }
  /** Weights of every head from the last forward `[batch, heads, time, time]` (with `keepAttentionWeights`). */
  get attentionWeights(): Tensor | null {
    return this.#weights;
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    if (x.rank !== 3 || x.shape[2] !== this.nEmbd) throw new ShapeError(`CausalSelfAttention expects [batch, time, ${this.nEmbd}], got [${x.shape.join(', ')}]`);
    const [b, t] = x.shape;
    const qkv = applyToLastAxis(this.getModule('c_attn'), x);
    if (!this.keepAttentionWeights && !(this.training && (this.opts.dropout ?? 0) > 0) && this.getModule('resid_dropout').numForwardHooks === 0 && !(isGradEnabled() && qkv.requiresGrad)) {
      // Inference: one engine call reads the heads in place and writes them merged, bitwise the
      // unfused path below (which counts a seeded draw per call: so does this one).
      if (this.opts.seed !== undefined) this.#calls++;
      const merged = fromHandle(call((e) => e.op_packed_self_attention(qkv.handle, this.nHead, 0, true, 1 / Math.sqrt(this.headDim))));
      qkv.dispose();
      const proj = applyToLastAxis(this.getModule('c_proj'), merged);
      merged.dispose();
      return proj; // resid_dropout (no hooks) would return a copy here (eval, or dropout 0)
    }
    const r = qkv.reshape([b, t, 3, this.nHead, this.headDim]);
    const p = r.permute([2, 0, 3, 1, 4]);
    const parts = [0, 1, 2].map((i) => p.slice([i, 0, 0, 0, 0], [i + 1, b, this.nHead, t, this.headDim]));
    const seed = this.opts.seed === undefined ? undefined : this.opts.seed * 1_000_003 + this.#calls++;
    const att = scaledDotProductAttention(parts[0], parts[1], parts[2], { causal: true, dropout: this.opts.dropout, training: this.training, seed });
    const merged = att.output.permute([0, 1, 3, 2, 4]);
    const flat = merged.reshape([b, t, this.nEmbd]);
    const proj = applyToLastAxis(this.getModule('c_proj'), flat);
    const y = (this.opts.dropout ?? 0) > 0 ? this.getModule('resid_dropout').forward(proj) : proj;
    if (this.keepAttentionWeights) {
      this.#weights?.dispose();
      const w = att.weights.reshape([b, this.nHead, t, t]);
      this.#weights = keep(w.detach());
      w.dispose();
    }
    for (const z of [qkv, r, p, ...parts, att.output, att.weights, merged, flat]) z.dispose();
    if (y !== proj) proj.dispose();
    return y;
  }
  override dispose(): void {
    this.#weights?.dispose();
    this.#weights = null;
    super.dispose();
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { nEmbd: this.nEmbd, nHead: this.nHead, ...rest };
  }
}

/** nanoGPT's MLP: `c_fc` (E → ratio·E), GELU, `c_proj`, dropout. */
export class GPTMLP extends Module {
  /**
   * @param nEmbd - Model width (input and output features).
   * @param opts - `mlpRatio` (hidden = ratio · nEmbd, default 4), dropout, bias, seed.
   */
  constructor(readonly nEmbd: number, readonly opts: GPTBlockOptions = {}) {
    checkOptions(opts, 'GPTMLP options');
    checkSize(nEmbd, 'GPTMLP nEmbd', 1);
    super();
    const hid = Math.round((opts.mlpRatio ?? 4) * nEmbd);
    const bias = opts.bias ?? true;
    this.buildOrFree(() => {
      this.registerModule('c_fc', new Linear(nEmbd, hid, { bias, weightInit: { normal: [0, 0.02] }, seed: seeded(opts.seed, 1) }));
      this.registerModule('c_proj', new Linear(hid, nEmbd, { bias, weightInit: { normal: [0, 0.02] }, seed: seeded(opts.seed, 2) }));
      this.registerModule('dropout', new Dropout(opts.dropout ?? 0, seeded(opts.seed, 3)));
    });
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    const h = applyToLastAxis(this.getModule('c_fc'), x);
    const g = h.gelu();
    const p = applyToLastAxis(this.getModule('c_proj'), g);
    const y = (this.opts.dropout ?? 0) > 0 ? this.getModule('dropout').forward(p) : p;
    h.dispose();
    g.dispose();
    if (y !== p) p.dispose();
    return y;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { nEmbd: this.nEmbd, ...rest };
  }
}

/** A decoder-only (GPT-2 style) block, pre-LN: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`. */
export class GPTBlock extends Module {
  /**
   * @param nEmbd - Model width (features of the `[batch, time, nEmbd]` input); a multiple of `nHead`.
   * @param nHead - Attention heads.
   * @param opts - MLP ratio, dropout, bias, keepAttentionWeights, seed.
   */
  constructor(readonly nEmbd: number, readonly nHead: number, readonly opts: GPTBlockOptions = {}) {
    checkOptions(opts, 'GPTBlock options');
    super();
    try {
      this.registerModule('ln_1', new LayerNorm(nEmbd));
      this.registerModule('attn', new CausalSelfAttention(nEmbd, nHead, { ...opts, seed: seeded(opts.seed, 1) }));
      this.registerModule('ln_2', new LayerNorm(nEmbd));
      this.registerModule('mlp', new GPTMLP(nEmbd, { ...opts, seed: seeded(opts.seed, 2) }));
    } catch (e) {
      this.dispose(); // the parts built before a bad argument was found
      throw e;
    }
  }
  /** The attention submodule `attn`. */
  get attn(): CausalSelfAttention {
    return this.getModule('attn') as CausalSelfAttention;
  }
  /**
   * The whole block in one engine call (the encoder layer's, pre-LN, causal, exact GELU) when
   * nothing records, it is in evaluation mode and every part is the plain module it built (no
   * hooks, adapters, kept weights or active dropout): bitwise the module-by-module forward.
   */
  #inference(x: Tensor): Tensor | null {
    if (this.training || x.rank !== 3 || x.shape[2] !== this.nEmbd || isGradEnabled()) return null;
    const [attn, mlp] = [this.attn, this.getModule('mlp')];
    if (Object.getPrototypeOf(attn) !== CausalSelfAttention.prototype || Object.getPrototypeOf(mlp) !== GPTMLP.prototype) return null;
    if (attn.training || mlp.training || attn.keepAttentionWeights || attn.numForwardHooks > 0 || mlp.numForwardHooks > 0) return null;
    const [cAttn, attnProj, cFc, mlpProj] = [attn.getModule('c_attn'), attn.getModule('c_proj'), mlp.getModule('c_fc'), mlp.getModule('c_proj')];
    if (!plainLinear(cAttn) || !plainLinear(attnProj) || !plainLinear(cFc) || !plainLinear(mlpProj)) return null;
    for (const d of [attn.getModule('resid_dropout'), mlp.getModule('dropout')]) {
      if (!(d instanceof Dropout) || d.training || d.numForwardHooks > 0) return null;
    }
    const [norm1, norm2] = [plainNorm(this.getModule('ln_1')), plainNorm(this.getModule('ln_2'))];
    if (!norm1 || !norm2) return null;
    countCausalCall.get(attn)?.();
    const parts = { linear1: cFc, linear2: mlpProj, norm1, norm2, activation: 1, normFirst: true };
    return encoderLayerCall(x, cAttn, attnProj, parts, this.nHead, null, true, 1 / Math.sqrt(attn.headDim));
  }
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    const fused = this.#inference(x);
    if (fused) return fused;
    const a = this.getModule('ln_1').forward(x);
    const b = this.attn.forward(a);
    const x1 = x.add(b);
    const c = this.getModule('ln_2').forward(x1);
    const d = this.getModule('mlp').forward(c);
    const y = x1.add(d);
    for (const t of [a, b, x1, c, d]) t.dispose();
    return y;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { nEmbd: this.nEmbd, nHead: this.nHead, ...rest };
  }
}

/** Configuration of `GPT` (nanoGPT's `GPTConfig`; defaults here are smaller). */
export interface GPTConfig {
  /** Token ids are in [0, vocabSize); the logits have vocabSize entries. */
  vocabSize: number;
  /** Longest context (positions). */
  blockSize: number;
  /** Transformer blocks (default 4). */
  nLayer?: number;
  /** Attention heads per block (default 4); must divide `nEmbd`. */
  nHead?: number;
  /** Model width (default 128). */
  nEmbd?: number;
  /** Dropout on the embeddings, attention and residual branches, training only (default 0). */
  dropout?: number;
  /** Biases in the blocks' linear layers (default true; the head never has one). */
  bias?: boolean;
  /** Seed for the initial weights and the dropout masks (default: the global stream). */
  seed?: number;
}

/**
 * A GPT: token and learned position embeddings, `nLayer` pre-LN blocks, a final LayerNorm and a
 * linear head. Input int32 token ids `[batch, time]`, output logits `[batch, time, vocabSize]`.
 * Names follow nanoGPT (`transformer.wte`, `transformer.wpe`, `transformer.h.<i>`,
 * `transformer.ln_f`, `lm_head`).
 */
export class GPT extends Module {
  /** The configuration with every default filled in. */
  readonly config: Required<Omit<GPTConfig, 'seed'>> & { seed?: number };
  /**
   * Called with `tok + pos` (`[batch, time, nEmbd]`) right after it is formed, so DP's per-example
   * gradients (eg.privacy) can capture the gradient of `transformer.wpe`'s table, which this model
   * reads directly instead of calling its forward; null (nothing called) otherwise.
   */
  positionTap: ((x0: Tensor) => void) | null = null;
  constructor(c: GPTConfig) {
    super();
    checkOptions(c, 'GPT config');
    if (c === undefined) throw new ArgumentError('GPT needs a config ({ vocabSize, blockSize, ... })');
    for (const k of ['vocabSize', 'blockSize'] as const) {
      if (!Number.isInteger(c[k]) || c[k] < 1) throw new ArgumentError(`GPT: ${k} must be a positive integer, got ${c[k]}`);
    }
    this.config = { nLayer: 4, nHead: 4, nEmbd: 128, dropout: 0, bias: true, ...c };
    const { vocabSize, blockSize, nLayer, nHead, nEmbd, dropout, bias, seed } = this.config;
    checkSize(nLayer, 'GPT: nLayer', 1);
    if (nLayer > MAX_LAYERS) throw new ArgumentError(`GPT: nLayer must be at most ${MAX_LAYERS}, got ${nLayer}`);
    const tr = this.registerModule('transformer', new GPTBody());
    const blocks: GPTBlock[] = [];
    let blocksRegistered = false;
    try {
      tr.add('wte', new Embedding(vocabSize, nEmbd, { init: { normal: [0, 0.02] }, seed: seeded(seed, 1) }));
      tr.add('wpe', new Embedding(blockSize, nEmbd, { init: { normal: [0, 0.02] }, seed: seeded(seed, 2) }));
      tr.add('drop', new Dropout(dropout, seeded(seed, 3)));
      for (let i = 0; i < nLayer; i++) blocks.push(new GPTBlock(nEmbd, nHead, { dropout, bias, seed: seeded(seed, 10 + i) }));
      tr.add('h', new ModuleList(blocks));
      blocksRegistered = true;
      tr.add('ln_f', new LayerNorm(nEmbd));
      this.registerModule('lm_head', new Linear(nEmbd, vocabSize, { bias: false, weightInit: { normal: [0, 0.02] }, seed: seeded(seed, 4) }));
    } catch (e) {
      // Free what was built before the bad argument was found (blocks not yet registered too).
      if (!blocksRegistered) for (const b of blocks) b.dispose();
      this.dispose();
      throw e;
    }
  }
  /** The transformer blocks `transformer.h.<i>`, in order. */
  get blocks(): GPTBlock[] {
    return (this.getModule('transformer').getModule('h') as ModuleList).children() as GPTBlock[];
  }
  /** Turns keeping of attention weights on or off in every block. */
  keepAttentionWeights(on = true): this {
    for (const b of this.blocks) b.attn.keepAttentionWeights = on;
    return this;
  }
  /** The last forward's attention weights per layer `[batch, heads, time, time]` (after `keepAttentionWeights()`). */
  attentionMaps(): (Tensor | null)[] {
    return this.blocks.map((b) => b.attn.attentionWeights);
  }
  /** Final hidden states `[batch, time, nEmbd]` (before the head). */
  features(idx: Tensor): Tensor {
    assertTensor(idx, 'GPT needs int32 token ids (a Tensor)');
    if (idx.dtype !== 'int32') throw new DTypeError(`GPT expects int32 token ids, got ${idx.dtype}`);
    if (idx.rank !== 2) throw new ShapeError(`GPT expects token ids [batch, time], got [${idx.shape.join(', ')}]`);
    const t = idx.shape[1];
    if (t > this.config.blockSize) throw new ShapeError(`GPT: sequence length ${t} exceeds blockSize ${this.config.blockSize}`);
    const tr = this.getModule('transformer');
    const tok = tr.getModule('wte').forward(idx);
    const pos = (tr.getModule('wpe') as Embedding).weight.slice([0, 0], [t, this.config.nEmbd]);
    const x0 = tok.add(pos);
    this.positionTap?.(x0);
    let x = this.config.dropout > 0 ? tr.getModule('drop').forward(x0) : x0;
    tok.dispose();
    pos.dispose();
    if (x !== x0) x0.dispose();
    for (const b of this.blocks) {
      const y = b.forward(x);
      x.dispose();
      x = y;
    }
    const out = tr.getModule('ln_f').forward(x);
    x.dispose();
    return out;
  }
  forward(idx: Tensor): Tensor {
    assertTensor(idx, `${this.className} needs a Tensor input`);
    const h = this.features(idx);
    const logits = applyToLastAxis(this.getModule('lm_head'), h);
    h.dispose();
    return logits;
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.config;
    return { ...rest };
  }
}

/** The `transformer` container of `GPT` (named submodules, no forward of its own). */
export class GPTBody extends Module {
  /** Registers `m` as the submodule `name`. */
  add(name: string, m: Module): void {
    this.registerModule(name, m);
  }
  forward(): Tensor {
    throw new ArgumentError('GPT.transformer is a container: call the GPT itself');
  }
  override getConfig(): Record<string, unknown> {
    throw new ArgumentError('GPT.transformer is rebuilt by GPT: save the GPT itself');
  }
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('TransformerEncoderLayer', (c: Cfg) => new TransformerEncoderLayer(c.dModel, c.nHead, c));
registerModule('TransformerEncoder', (c: Cfg) => new TransformerEncoder((c.layers as ModuleConfig[]).map((l) => moduleFromConfig(l) as TransformerEncoderLayer),
  c.norm ? moduleFromConfig(c.norm as ModuleConfig) as LayerNorm : null));
registerModule('ModuleList', (c: Cfg) => new ModuleList((c.modules as ModuleConfig[]).map(moduleFromConfig)));
registerModule('CausalSelfAttention', (c: Cfg) => new CausalSelfAttention(c.nEmbd, c.nHead, c));
registerModule('GPTMLP', (c: Cfg) => new GPTMLP(c.nEmbd, c));
registerModule('GPTBlock', (c: Cfg) => new GPTBlock(c.nEmbd, c.nHead, c));
registerModule('GPT', (c: Cfg) => new GPT(c as GPTConfig));
