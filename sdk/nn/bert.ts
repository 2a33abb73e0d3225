/**
 * A BERT-style encoder for masked-LM pretraining and fine-tuning:
 *
 * - `BertEncoder`: token + learned position embeddings, pre-LN Transformer blocks, a final
 *   LayerNorm. Padding (`padTokenId`, or an explicit attention mask) is never attended to: it gets
 *   a 0 in the keep-mask of every head, so its attention weights are exactly 0.
 * - `BertForMaskedLM`: the encoder and BERT's MLM head (dense → GELU → LayerNorm → decoder) whose
 *   decoder weight IS the token embedding table (the same Tensor: weight tying, one entry in the
 *   state dict) plus an output bias.
 * - `BertForSequenceClassification`: the encoder, [CLS] or masked-mean pooling, dropout and a
 *   `classifier` Linear.
 * - `maskTokens`: BERT's 80/10/10 masking, seeded with the engine's RNG (identical everywhere);
 *   `mlmStep`: a `fit` step that masks each batch afresh (dynamic masking, as RoBERTa) and scores
 *   only the masked positions; `layerwiseLrGroups`: layer-wise learning-rate decay.
 *
 * Every Linear has a short name so adapters can target it: `layers.<i>.attn.q`, `attn.k`, `attn.v`,
 * `attn.out`, `layers.<i>.mlp.fc1`, `mlp.fc2` (under `bert.` in the task models).
 */
import { checkBool, checkInt, checkNumber, checkOptions, checkSize, describe, MAX_LAYERS } from '../args.js';
import { noGrad } from '../autograd.js';
import { rand, randint, tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { keep, tidy } from '../memory.js';
import { sparseCategoricalCrossEntropy } from '../losses.js';
import { clipGradNorm } from '../optim/optimizers.js';
import { assertTensor, Tensor } from '../tensor.js';
import { checkStepInput, type StepInput, type StepOutput, type TrainStep } from '../train/step.js';
import { applyToLastAxis, scaledDotProductAttention } from './attention.js';
import { Dropout, Embedding, LayerNorm, Linear } from './layers.js';
import { assertModule, Module, registerModule } from './module.js';
import { ModuleList } from './transformer.js';

/** Label of positions that do not count in the MLM loss (PyTorch's `ignore_index` default). */
export const IGNORE_INDEX = -100;

/** Sizes of a BERT encoder. */
export interface BertConfig {
  /** Vocabulary size (the tokenizer's `vocabSize`). */
  vocabSize: number;
  /** Longest sequence (default 128). */
  maxPositions?: number;
  /** Width of every hidden state (default 128). */
  hiddenSize?: number;
  /** Number of Transformer blocks (default 2). */
  numLayers?: number;
  /** Attention heads per block (default 2; must divide `hiddenSize`). */
  numHeads?: number;
  /** Hidden size of each block's MLP (default 4 · hiddenSize). */
  intermediateSize?: number;
  /** Dropout on embeddings, attention weights and residual branches (default 0.1). */
  dropout?: number;
  /** LayerNorm epsilon (default 1e-5). */
  layerNormEps?: number;
  /** Id of `[PAD]` (default 0): such tokens are masked out of attention when no mask is given. */
  padTokenId?: number;
  /** Keep every head's attention weights after each forward (`attentionMaps()`). */
  keepAttentionWeights?: boolean;
  /** Seed of the initialisation and the dropout masks. */
  seed?: number;
}

type FullConfig = Required<Omit<BertConfig, 'seed'>> & { seed?: number };

function sub(seed: number | undefined, k: number): number | undefined {
  return seed === undefined ? undefined : seed * 1009 + k;
}
const INIT = { normal: [0, 0.02] as [number, number] };

function checkConfig(c: BertConfig): FullConfig {
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new ArgumentError(`a BERT model needs a config ({ vocabSize, ... }), got ${describe(c)}`);
  const hiddenSize = c.hiddenSize === undefined ? 128 : checkInt(c.hiddenSize, 'BertConfig.hiddenSize', 1, 65_536);
  const r: FullConfig = {
    vocabSize: checkInt(c.vocabSize, 'BertConfig.vocabSize', 1, 1 << 24),
    maxPositions: c.maxPositions === undefined ? 128 : checkInt(c.maxPositions, 'BertConfig.maxPositions', 1, 1 << 20),
    hiddenSize,
    numLayers: c.numLayers === undefined ? 2 : checkInt(c.numLayers, 'BertConfig.numLayers', 1, MAX_LAYERS),
    numHeads: c.numHeads === undefined ? 2 : checkInt(c.numHeads, 'BertConfig.numHeads', 1, hiddenSize),
    intermediateSize: c.intermediateSize === undefined ? 4 * hiddenSize : checkInt(c.intermediateSize, 'BertConfig.intermediateSize', 1, 1 << 20),
    dropout: c.dropout === undefined ? 0.1 : checkNumber(c.dropout, 'BertConfig.dropout', { finite: true }),
    layerNormEps: c.layerNormEps === undefined ? 1e-5 : checkNumber(c.layerNormEps, 'BertConfig.layerNormEps', { finite: true }),
    padTokenId: c.padTokenId === undefined ? 0 : checkInt(c.padTokenId, 'BertConfig.padTokenId', 0),
    keepAttentionWeights: c.keepAttentionWeights === undefined ? false : checkBool(c.keepAttentionWeights, 'BertConfig.keepAttentionWeights'),
    seed: c.seed === undefined ? undefined : checkInt(c.seed, 'BertConfig.seed'),
  };
  if (r.hiddenSize % r.numHeads !== 0) throw new ArgumentError(`BertConfig: hiddenSize (${r.hiddenSize}) must be a multiple of numHeads (${r.numHeads})`);
  if (!(r.dropout >= 0 && r.dropout < 1)) throw new ArgumentError(`BertConfig.dropout must be in [0, 1), got ${r.dropout}`);
  if (!(r.layerNormEps > 0)) throw new ArgumentError(`BertConfig.layerNormEps must be > 0, got ${r.layerNormEps}`);
  if (r.padTokenId >= r.vocabSize) throw new ArgumentError(`BertConfig.padTokenId ${r.padTokenId} is outside the vocabulary (size ${r.vocabSize})`);
  return r;
}

/** Self-attention with separate `q`, `k`, `v` and `out` Linear layers; padding keys get weight 0. */
export class BertSelfAttention extends Module {
  /** Features per head. */
  readonly headDim: number;
  /** Keep the last forward's weights `[batch, heads, queries, keys]` in `attentionWeights`. */
  keepAttentionWeights = false;
  #weights: Tensor | null = null;
  #calls = 0;
  /**
   * An attention block of `hiddenSize` split into `numHeads` heads.
   * @param hiddenSize - Model width (features of the `[batch, length, hiddenSize]` input); a multiple of `numHeads`.
   * @param numHeads - Attention heads.
   * @param opts - Dropout on the attention weights (training only, default 0) and the seed of the initial weights and masks.
   */
  constructor(readonly hiddenSize: number, readonly numHeads: number, readonly opts: { dropout?: number; seed?: number } = {}) {
    checkOptions(opts, 'BertSelfAttention options');
    checkSize(hiddenSize, 'BertSelfAttention hiddenSize', 1);
    checkSize(numHeads, 'BertSelfAttention numHeads', 1);
    if (hiddenSize % numHeads !== 0) throw new ArgumentError(`BertSelfAttention: hiddenSize (${hiddenSize}) must be a multiple of numHeads (${numHeads})`);
    if (opts.dropout !== undefined && !(typeof opts.dropout === 'number' && opts.dropout >= 0 && opts.dropout < 1)) throw new ArgumentError(`BertSelfAttention dropout must be in [0, 1), got ${describe(opts.dropout)}`);
    if (opts.seed !== undefined) checkInt(opts.seed, 'BertSelfAttention seed');
    super();
    this.headDim = hiddenSize / numHeads;
    this.buildOrFree(() => {
      for (const [i, n] of ['q', 'k', 'v', 'out'].entries()) this.registerModule(n, new Linear(hiddenSize, hiddenSize, { weightInit: INIT, seed: sub(opts.seed, i + 1) }));
    });
  }
  /** The last forward's weights (with `keepAttentionWeights`), else null. */
  get attentionWeights(): Tensor | null {
    return this.#weights;
  }
  /** Seeded draws so far, kept in checkpoints so a resumed run draws the same masks. */
  override getExtraState(): { calls: number } {
    return { calls: this.#calls };
  }
  override setExtraState(s: unknown): void {
    this.#calls = this.readCallCount(s);
  }
  /** `x` `[batch, length, hiddenSize]`; `keyMask` `[batch, length]` (1 real token, 0 padding) or null. */
  forward(x: Tensor, keyMask: Tensor | null = null): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    if (x.rank !== 3 || x.shape[2] !== this.hiddenSize) throw new ShapeError(`${this.className} expects [batch, length, ${this.hiddenSize}], got [${x.shape.join(', ')}]`);
    const [b, t] = x.shape;
    if (keyMask !== null) {
      assertTensor(keyMask, `${this.className}: keyMask must be a Tensor`);
      if (keyMask.shape.join() !== `${b},${t}`) throw new ShapeError(`${this.className}: keyMask must be [${b}, ${t}], got [${keyMask.shape.join(', ')}]`);
    }
    return tidy(() => {
      const heads = (name: string) => applyToLastAxis(this.getModule(name), x).reshape([b, t, this.numHeads, this.headDim]).transpose(1, 2);
      const mask = keyMask === null ? null : (keyMask.dtype === 'float32' ? keyMask : keyMask.cast('float32')).reshape([b, 1, 1, t]);
      const p = this.opts.dropout ?? 0;
      const seed = this.opts.seed === undefined ? undefined : this.opts.seed * 1_000_003 + this.#calls++;
      const att = scaledDotProductAttention(heads('q'), heads('k'), heads('v'), { mask, dropout: p, training: this.training, seed });
      if (this.keepAttentionWeights) {
        this.#weights?.dispose();
        this.#weights = keep(att.weights.detach());
      }
      return applyToLastAxis(this.getModule('out'), att.output.transpose(1, 2).reshape([b, t, this.hiddenSize]));
    });
  }
  override dispose(): void {
    this.#weights?.dispose();
    this.#weights = null;
    super.dispose();
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.opts;
    return { hiddenSize: this.hiddenSize, numHeads: this.numHeads, ...rest };
  }
}

/** The block's MLP: `fc1` → GELU → `fc2`. */
export class BertMLP extends Module {
  /**
   * `hiddenSize` → `intermediateSize` → `hiddenSize`.
   * @param hiddenSize - Input and output features.
   * @param intermediateSize - Hidden features of the MLP.
   * @param opts - Seed of the initial weights (default: the global stream).
   */
  constructor(readonly hiddenSize: number, readonly intermediateSize: number, readonly opts: { seed?: number } = {}) {
    checkOptions(opts, 'BertMLP options');
    checkSize(hiddenSize, 'BertMLP hiddenSize', 1);
    checkSize(intermediateSize, 'BertMLP intermediateSize', 1);
    super();
    this.buildOrFree(() => {
      this.registerModule('fc1', new Linear(hiddenSize, intermediateSize, { weightInit: INIT, seed: sub(opts.seed, 1) }));
      this.registerModule('fc2', new Linear(intermediateSize, hiddenSize, { weightInit: INIT, seed: sub(opts.seed, 2) }));
    });
  }
  /** `[..., hiddenSize]` → `[..., hiddenSize]`. */
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    return tidy(() => applyToLastAxis(this.getModule('fc2'), applyToLastAxis(this.getModule('fc1'), x).gelu()));
  }
  override getConfig() {
    return { hiddenSize: this.hiddenSize, intermediateSize: this.intermediateSize };
  }
}

/** A pre-LN block: `x + drop(attn(ln1(x)))`, then `x + drop(mlp(ln2(x)))`. */
export class BertLayer extends Module {
  /** One block of an encoder with config `c` (see `BertConfig`). */
  constructor(c: BertConfig) {
    const cfg = checkConfig(c);
    super();
    this.buildOrFree(() => {
      const h = cfg.hiddenSize;
      this.registerModule('ln1', new LayerNorm(h, { eps: cfg.layerNormEps }));
      this.registerModule('attn', new BertSelfAttention(h, cfg.numHeads, { dropout: cfg.dropout, seed: sub(cfg.seed, 1) }));
      this.registerModule('ln2', new LayerNorm(h, { eps: cfg.layerNormEps }));
      this.registerModule('mlp', new BertMLP(h, cfg.intermediateSize, { seed: sub(cfg.seed, 2) }));
      this.registerModule('dropout', new Dropout(cfg.dropout, sub(cfg.seed, 3)));
    });
    this.#config = cfg;
  }
  readonly #config: FullConfig;
  /** The attention block. */
  get attn(): BertSelfAttention {
    return this.getModule('attn') as BertSelfAttention;
  }
  /** `x` `[batch, length, hiddenSize]`, `keyMask` `[batch, length]` or null. */
  forward(x: Tensor, keyMask: Tensor | null = null): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    return tidy(() => {
      const drop = this.getModule('dropout');
      const x1 = x.add(drop.forward(this.attn.forward(this.getModule('ln1').forward(x), keyMask)));
      return x1.add(drop.forward(this.getModule('mlp').forward(this.getModule('ln2').forward(x1))));
    });
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.#config;
    return rest;
  }
}

/** Token and position embedding tables (`tok`, `pos`), summed, then dropout. */
export class BertEmbeddings extends Module {
  /** Tables for a config `c` (see `BertConfig`). */
  constructor(c: BertConfig) {
    const cfg = checkConfig(c);
    super();
    this.buildOrFree(() => {
      this.registerModule('tok', new Embedding(cfg.vocabSize, cfg.hiddenSize, { init: INIT, seed: sub(cfg.seed, 1) }));
      this.registerModule('pos', new Embedding(cfg.maxPositions, cfg.hiddenSize, { init: INIT, seed: sub(cfg.seed, 2) }));
      this.registerModule('dropout', new Dropout(cfg.dropout, sub(cfg.seed, 3)));
    });
    this.#config = cfg;
  }
  readonly #config: FullConfig;
  /** The token table `[vocabSize, hiddenSize]` (the MLM decoder's weight too). */
  get tokenWeight(): Tensor {
    return (this.getModule('tok') as Embedding).weight;
  }
  /** int32 ids `[batch, length]` → `[batch, length, hiddenSize]`. */
  forward(ids: Tensor): Tensor {
    checkIds(ids, this.#config, this.className);
    const t = ids.shape[1];
    return tidy(() => {
      const pos = (this.getModule('pos') as Embedding).weight.slice([0, 0], [t, this.#config.hiddenSize]);
      return this.getModule('dropout').forward(this.getModule('tok').forward(ids).add(pos));
    });
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.#config;
    return rest;
  }
}

function checkIds(ids: unknown, c: FullConfig, who: string): asserts ids is Tensor {
  assertTensor(ids, `${who} needs int32 token ids [batch, length] (a Tensor)`);
  if (ids.dtype !== 'int32') throw new DTypeError(`${who} expects int32 token ids, got ${ids.dtype}`);
  if (ids.rank !== 2) throw new ShapeError(`${who} expects token ids [batch, length], got [${ids.shape.join(', ')}]`);
  if (ids.shape[1] > c.maxPositions) throw new ShapeError(`${who}: sequence length ${ids.shape[1]} exceeds maxPositions ${c.maxPositions}`);
  if (ids.shape[1] === 0) throw new ShapeError(`${who}: sequences must have at least one token`);
}

/** float32 `[batch, length]`: 1 where `ids` is not `padTokenId` (compared in float32: exact below 2^24). */
function padMask(ids: Tensor, padTokenId: number): Tensor {
  return tidy(() => ids.cast('float32').notEqual(padTokenId));
}

/** An attention mask (1 real, 0 padding) for `ids`: the given one, checked, or `ids != padTokenId`. */
function keyMaskFor(ids: Tensor, mask: Tensor | null | undefined, c: FullConfig, who: string): Tensor {
  if (mask === undefined || mask === null) return padMask(ids, c.padTokenId);
  assertTensor(mask, `${who}: attentionMask must be a Tensor`);
  if (mask.shape.join() !== ids.shape.join()) throw new ShapeError(`${who}: attentionMask [${mask.shape.join(', ')}] must have the shape of the ids [${ids.shape.join(', ')}]`);
  return mask.cast('float32');
}

/**
 * The encoder: `embeddings` (`tok`, `pos`), `layers.<i>` (pre-LN blocks), `ln_f`. Input int32 ids
 * `[batch, length]`, output hidden states `[batch, length, hiddenSize]`.
 */
export class BertEncoder extends Module {
  /** The sizes, defaults filled in. */
  readonly config: FullConfig;
  /** An encoder of the given sizes (see `BertConfig`). */
  constructor(c: BertConfig) {
    const cfg = checkConfig(c);
    super();
    this.config = cfg;
    this.buildOrFree((pending) => {
      this.registerModule('embeddings', new BertEmbeddings(cfg));
      const layers: BertLayer[] = [];
      for (let i = 0; i < cfg.numLayers; i++) {
        layers.push(new BertLayer({ ...cfg, seed: sub(cfg.seed, 10 + i) }));
        pending.push(layers[i]);
      }
      this.registerModule('layers', new ModuleList(layers));
      pending.length = 0;
      this.registerModule('ln_f', new LayerNorm(cfg.hiddenSize, { eps: cfg.layerNormEps }));
    });
    this.keepAttentionWeights(cfg.keepAttentionWeights);
  }
  /** The blocks. */
  get layers(): BertLayer[] {
    return (this.getModule('layers') as ModuleList).children() as BertLayer[];
  }
  /** The embedding tables. */
  get embeddings(): BertEmbeddings {
    return this.getModule('embeddings') as BertEmbeddings;
  }
  /** Turns keeping of attention weights on or off in every block. */
  keepAttentionWeights(on = true): this {
    checkBool(on, 'keepAttentionWeights');
    for (const l of this.layers) l.attn.keepAttentionWeights = on;
    return this;
  }
  /** The last forward's weights per block `[batch, heads, length, length]` (after `keepAttentionWeights()`). */
  attentionMaps(): (Tensor | null)[] {
    return this.layers.map((l) => l.attn.attentionWeights);
  }
  /**
   * Hidden states `[batch, length, hiddenSize]` of int32 `ids` `[batch, length]`. `attentionMask`
   * (1 real token, 0 padding; default: `ids != padTokenId`) keeps padding out of every attention.
   */
  forward(ids: Tensor, attentionMask: Tensor | null = null): Tensor {
    checkIds(ids, this.config, this.className);
    return tidy(() => {
      const mask = keyMaskFor(ids, attentionMask, this.config, this.className);
      let x = this.embeddings.forward(ids);
      for (const l of this.layers) x = l.forward(x, mask);
      return this.getModule('ln_f').forward(x);
    });
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.config;
    return rest;
  }
}

/** BERT's MLM head without the decoder: `dense` → GELU → `ln`, then `· tokᵀ + bias`. */
export class BertForMaskedLM extends Module {
  /** The encoder's config. */
  readonly config: FullConfig;
  /** An encoder (`bert`) and MLM head (`mlm.dense`, `mlm.ln`, `mlm_bias`) for config `c`. */
  constructor(c: BertConfig) {
    const cfg = checkConfig(c);
    super();
    this.config = cfg;
    this.buildOrFree(() => {
      this.registerModule('bert', new BertEncoder(cfg));
      this.registerModule('mlm', new MlmTransform(cfg));
      this.registerParameter('mlm_bias', tensor(new Float32Array(cfg.vocabSize), [cfg.vocabSize]));
    });
  }
  /** The encoder. */
  get bert(): BertEncoder {
    return this.getModule('bert') as BertEncoder;
  }
  /** Vocabulary logits of hidden states `[..., hiddenSize]` (the tied decoder). */
  logitsOf(hidden: Tensor): Tensor {
    assertTensor(hidden, `${this.className}.logitsOf needs hidden states (a Tensor)`);
    return tidy(() => {
      const h = this.getModule('mlm').forward(hidden);
      const flat = h.reshape([-1, this.config.hiddenSize]);
      // Weight tying: the decoder is the token table itself, [V, H] read transposed.
      const logits = flat.matmulT(this.bert.embeddings.tokenWeight, false, true).add(this.param('mlm_bias'));
      return logits.reshape([...hidden.shape.slice(0, -1), this.config.vocabSize]);
    });
  }
  /** Logits `[batch, length, vocabSize]` of int32 ids `[batch, length]`. */
  forward(ids: Tensor, attentionMask: Tensor | null = null): Tensor {
    return tidy(() => this.logitsOf(this.bert.forward(ids, attentionMask)));
  }
  /**
   * MLM loss and accuracy on the positions whose label is not `IGNORE_INDEX` (only those pass
   * through the head: no `[batch·length, vocab]` logits). `labels` int32 `[batch, length]`. Returns
   * the mean cross-entropy (a scalar with gradient), the number of scored positions and how many
   * of them were predicted right.
   */
  maskedLoss(ids: Tensor, labels: Tensor, attentionMask: Tensor | null = null): { loss: Tensor; count: number; correct: number } {
    assertTensor(labels, `${this.className}.maskedLoss needs int32 labels (a Tensor)`);
    checkIds(ids, this.config, this.className);
    if (labels.dtype !== 'int32' || labels.shape.join() !== ids.shape.join()) throw new ShapeError(`${this.className}.maskedLoss: labels must be int32 [${ids.shape.join(', ')}], got ${labels.dtype} [${labels.shape.join(', ')}]`);
    const lab = labels.dataSync() as Int32Array;
    const pos: number[] = [];
    const tgt: number[] = [];
    lab.forEach((l, i) => {
      if (l === IGNORE_INDEX) return;
      if (!(l >= 0 && l < this.config.vocabSize)) throw new ArgumentError(`${this.className}.maskedLoss: label ${l} at position ${i} is neither a token id nor ${IGNORE_INDEX}`);
      pos.push(i);
      tgt.push(l);
    });
    if (pos.length === 0) throw new ArgumentError(`${this.className}.maskedLoss: no position is labelled (every label is ${IGNORE_INDEX})`);
    let correct = 0;
    const loss = tidy(() => {
      const h = this.bert.forward(ids, attentionMask).reshape([-1, this.config.hiddenSize]);
      const logits = this.logitsOf(h.indexSelect(0, tensor(Int32Array.from(pos), [pos.length], 'int32')));
      const target = tensor(Int32Array.from(tgt), [tgt.length], 'int32');
      const guess = noGrad(() => logits.argMax(-1).dataSync());
      for (let i = 0; i < tgt.length; i++) if (guess[i] === tgt[i]) correct++;
      return sparseCategoricalCrossEntropy(logits, target, { fromLogits: true });
    });
    return { loss, count: pos.length, correct };
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.config;
    return rest;
  }
}

/** The MLM head's transform: `dense` (H → H), GELU, `ln`. */
export class MlmTransform extends Module {
  /** For config `c` (see `BertConfig`). */
  constructor(c: BertConfig) {
    const cfg = checkConfig(c);
    super();
    this.buildOrFree(() => {
      this.registerModule('dense', new Linear(cfg.hiddenSize, cfg.hiddenSize, { weightInit: INIT, seed: sub(cfg.seed, 5) }));
      this.registerModule('ln', new LayerNorm(cfg.hiddenSize, { eps: cfg.layerNormEps }));
    });
    this.#config = cfg;
  }
  readonly #config: FullConfig;
  /** `[..., H]` → `[..., H]`. */
  forward(x: Tensor): Tensor {
    assertTensor(x, `${this.className} needs a Tensor input`);
    return tidy(() => this.getModule('ln').forward(applyToLastAxis(this.getModule('dense'), x).gelu()));
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.#config;
    return rest;
  }
}

/** Options of `BertForSequenceClassification`. */
export interface BertClassifierOptions {
  /** Number of classes (default 2). */
  numClasses?: number;
  /** `'cls'`: the first token's final state (default); `'mean'`: the mean over real tokens. */
  pooling?: 'cls' | 'mean';
  /** Dropout before the classifier (default the encoder's). */
  classifierDropout?: number;
}

/** Encoder (`bert`), pooling, `dropout` and `classifier`: int32 ids `[batch, length]` → logits `[batch, numClasses]`. */
export class BertForSequenceClassification extends Module {
  /** The encoder's config. */
  readonly config: FullConfig;
  /** Number of classes (outputs). */
  readonly numClasses: number;
  /** How the hidden states become one vector per sequence. */
  readonly pooling: 'cls' | 'mean';
  readonly #dropout: number;
  /** A classifier over an encoder of config `c`; load pretrained weights with `bert.loadStateDict(...)`. */
  constructor(c: BertConfig, opts: BertClassifierOptions = {}) {
    const cfg = checkConfig(c);
    checkOptions(opts, 'BertForSequenceClassification options');
    const numClasses = opts.numClasses === undefined ? 2 : checkInt(opts.numClasses, 'BertForSequenceClassification numClasses', 1, 1 << 20);
    if (opts.pooling !== undefined && opts.pooling !== 'cls' && opts.pooling !== 'mean') throw new ArgumentError(`BertForSequenceClassification pooling must be 'cls' or 'mean', got ${describe(opts.pooling)}`);
    const p = opts.classifierDropout === undefined ? cfg.dropout : checkNumber(opts.classifierDropout, 'BertForSequenceClassification classifierDropout', { finite: true });
    if (!(p >= 0 && p < 1)) throw new ArgumentError(`BertForSequenceClassification classifierDropout must be in [0, 1), got ${p}`);
    super();
    this.config = cfg;
    this.numClasses = numClasses;
    this.pooling = opts.pooling ?? 'cls';
    this.#dropout = p;
    this.buildOrFree(() => {
      this.registerModule('bert', new BertEncoder(cfg));
      this.registerModule('dropout', new Dropout(p, sub(cfg.seed, 7)));
      this.registerModule('classifier', new Linear(cfg.hiddenSize, numClasses, { weightInit: INIT, seed: sub(cfg.seed, 8) }));
    });
  }
  /** The encoder. */
  get bert(): BertEncoder {
    return this.getModule('bert') as BertEncoder;
  }
  /** Pooled features `[batch, hiddenSize]`. */
  features(ids: Tensor, attentionMask: Tensor | null = null): Tensor {
    checkIds(ids, this.config, this.className);
    return tidy(() => {
      const h = this.bert.forward(ids, attentionMask);
      const [b, t, d] = h.shape;
      if (this.pooling === 'cls') return h.slice([0, 0, 0], [b, 1, d]).reshape([b, d]);
      const m = keyMaskFor(ids, attentionMask, this.config, this.className).reshape([b, t, 1]);
      return h.mul(m).sum(1).div(m.sum(1).maximum(1));
    });
  }
  /** Class logits `[batch, numClasses]`. */
  forward(ids: Tensor, attentionMask: Tensor | null = null): Tensor {
    return tidy(() => this.getModule('classifier').forward(this.getModule('dropout').forward(this.features(ids, attentionMask))));
  }
  override getConfig() {
    const { seed: _s, ...rest } = this.config;
    return { ...rest, numClasses: this.numClasses, pooling: this.pooling, classifierDropout: this.#dropout };
  }
}

// ------------------------------------------------------------------------------------- masking

/** Options of `maskTokens`. */
export interface MaskTokensOptions {
  /** Vocabulary size: random replacements are drawn from `[numSpecial, vocabSize)`. */
  vocabSize: number;
  /** Id of `[MASK]` (default 4, `WordPieceTokenizer`'s). */
  maskTokenId?: number;
  /** Ids below this are special tokens (`[PAD]`, `[CLS]`...), never selected (default 5). */
  numSpecial?: number;
  /** Share of the non-special tokens selected (default 0.15). */
  probability?: number;
  /** Of the selected: share replaced by `[MASK]` (default 0.8) and by a random token (default 0.1); the rest stays. */
  maskFraction?: number;
  /** See `maskFraction`. */
  randomFraction?: number;
  /** Seed of the draws (engine RNG: identical in every runtime). */
  seed?: number;
}

/**
 * BERT's masking: each non-special token is selected with `probability`; a selected token becomes
 * `[MASK]` (80%), a random non-special token (10%) or stays (10%). Returns the corrupted ids and
 * the labels (the original id where selected, `IGNORE_INDEX` elsewhere), both int32 like `ids`
 * (the caller disposes them).
 */
export function maskTokens(ids: Tensor, opts: MaskTokensOptions): { inputIds: Tensor; labels: Tensor } {
  assertTensor(ids, 'maskTokens needs int32 token ids (a Tensor)');
  if (ids.dtype !== 'int32') throw new DTypeError(`maskTokens expects int32 token ids, got ${ids.dtype}`);
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`maskTokens needs options ({ vocabSize, ... }), got ${describe(opts)}`);
  const vocabSize = checkInt(opts.vocabSize, 'maskTokens vocabSize', 1, 1 << 24);
  const numSpecial = opts.numSpecial === undefined ? 5 : checkInt(opts.numSpecial, 'maskTokens numSpecial', 0, vocabSize - 1);
  const maskId = opts.maskTokenId === undefined ? 4 : checkInt(opts.maskTokenId, 'maskTokens maskTokenId', 0, vocabSize - 1);
  const prob = (k: keyof MaskTokensOptions, d: number) => {
    const x = opts[k] === undefined ? d : checkNumber(opts[k], `maskTokens ${k}`, { finite: true });
    if (!(x >= 0 && x <= 1)) throw new ArgumentError(`maskTokens ${k} must be in [0, 1], got ${x}`);
    return x;
  };
  const p = prob('probability', 0.15);
  const pm = prob('maskFraction', 0.8);
  const pr = prob('randomFraction', 0.1);
  if (pm + pr > 1) throw new ArgumentError(`maskTokens: maskFraction + randomFraction must be at most 1, got ${pm + pr}`);
  const seed = opts.seed === undefined ? undefined : checkInt(opts.seed, 'maskTokens seed');
  const n = ids.size;
  const src = ids.dataSync() as Int32Array;
  const s = (k: number) => (seed === undefined ? undefined : { seed: seed * 4 + k });
  // Three draws per position (select, which replacement, which random token), from the engine RNG.
  const [u, w, r] = tidy(() => [rand([Math.max(n, 1)], 0, 1, s(1)).dataSync(), rand([Math.max(n, 1)], 0, 1, s(2)).dataSync(),
    randint([Math.max(n, 1)], numSpecial, vocabSize, s(3)).dataSync()]);
  const out = new Int32Array(n);
  const labels = new Int32Array(n).fill(IGNORE_INDEX);
  for (let i = 0; i < n; i++) {
    const id = src[i];
    out[i] = id;
    if (id < numSpecial || !(u[i] < p)) continue;
    labels[i] = id;
    if (w[i] < pm) out[i] = maskId;
    else if (w[i] < pm + pr) out[i] = r[i];
  }
  return { inputIds: tensor(out, ids.shape, 'int32'), labels: tensor(labels, ids.shape, 'int32') };
}

/** Options of `mlmStep`. */
export interface MlmStepOptions extends Omit<MaskTokensOptions, 'seed' | 'vocabSize'> {
  /** Base seed: batch `step` is masked with seed `seed + step` (default 0). */
  seed?: number;
  /** Called after each batch with its MLM loss, scored positions and correct predictions. */
  onBatch?: (r: { loss: number; count: number; correct: number }) => void;
}

/**
 * A `fit` step for masked-LM pretraining of a `BertForMaskedLM`: `fit(ids, ids, { trainStep:
 * mlmStep(...) })` (the targets are not read: each batch of ids is masked afresh with
 * `maskTokens`). Honours `compile({ clipGradNorm })`. The `pred` it returns is the batch's accuracy
 * on the masked positions (a scalar), so compile with no metrics and read `onBatch` instead.
 */
export function mlmStep(opts: MlmStepOptions = {}): TrainStep {
  checkOptions(opts, 'mlmStep options');
  const seed = opts.seed === undefined ? 0 : checkInt(opts.seed, 'mlmStep seed');
  if (opts.onBatch !== undefined && typeof opts.onBatch !== 'function') throw new ArgumentError(`mlmStep onBatch must be a function, got ${describe(opts.onBatch)}`);
  const { onBatch, seed: _s, ...maskOpts } = opts;
  return (s: StepInput): StepOutput => {
    checkStepInput(s, 'mlmStep');
    assertModule(s.model, 'mlmStep');
    if (!(s.model instanceof BertForMaskedLM)) throw new ArgumentError(`mlmStep trains a BertForMaskedLM, got ${s.model.className}`);
    const m = s.model;
    const { inputIds, labels } = maskTokens(s.x, { ...maskOpts, vocabSize: m.config.vocabSize, seed: seed + s.step });
    try {
      s.optimizer.zeroGrad();
      const r = m.maskedLoss(inputIds, labels, padMask(s.x, m.config.padTokenId));
      r.loss.backward();
      if (s.clipGradNorm !== undefined) clipGradNorm(s.params, s.clipGradNorm);
      s.optimizer.step();
      onBatch?.({ loss: r.loss.item(), count: r.count, correct: r.correct });
      return { loss: r.loss, pred: tensor([r.correct / r.count]) };
    } finally {
      inputIds.dispose();
      labels.dispose();
    }
  };
}

/**
 * Layer-wise learning-rate decay (ELECTRA, ULMFiT's discriminative rates): parameter groups for an
 * optimizer where everything outside the encoder and its final norm get `lr`, block `i` of `L`
 * gets `lr · decay^(L - i)` and the embeddings `lr · decay^(L + 1)`. Frozen parameters are left out.
 */
export function layerwiseLrGroups(model: Module, opts: { lr: number; decay: number }): { params: Tensor[]; lr: number }[] {
  assertModule(model, 'layerwiseLrGroups');
  if (opts === null || typeof opts !== 'object') throw new ArgumentError(`layerwiseLrGroups needs { lr, decay }, got ${describe(opts)}`);
  const lr = checkNumber(opts.lr, 'layerwiseLrGroups lr', { finite: true });
  const decay = checkNumber(opts.decay, 'layerwiseLrGroups decay', { finite: true });
  if (!(lr >= 0)) throw new ArgumentError(`layerwiseLrGroups lr must be >= 0, got ${lr}`);
  if (!(decay > 0 && decay <= 1)) throw new ArgumentError(`layerwiseLrGroups decay must be in (0, 1], got ${decay}`);
  const enc = model instanceof BertEncoder ? { path: '', m: model } : ([...model.namedModules()].map(([p, m]) => ({ path: p, m })).find((e) => e.m instanceof BertEncoder) as { path: string; m: BertEncoder } | undefined);
  if (!enc) throw new ArgumentError(`layerwiseLrGroups: ${model.className} holds no BertEncoder`);
  const L = enc.m.config.numLayers;
  const pre = enc.path ? `${enc.path}.` : '';
  const depth = (name: string): number => {
    if (!name.startsWith(pre)) return 0;
    const rest = name.slice(pre.length);
    if (rest.startsWith('embeddings.')) return L + 1;
    const mt = /^layers\.(\d+)\./.exec(rest);
    return mt ? L - Number(mt[1]) : 0;
  };
  const groups = new Map<number, Tensor[]>();
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    const d = depth(name);
    (groups.get(d) ?? groups.set(d, []).get(d)!).push(p);
  }
  if (groups.size === 0) throw new ArgumentError('layerwiseLrGroups: the model has no trainable parameter');
  return [...groups.entries()].sort((a, b) => a[0] - b[0]).map(([d, params]) => ({ params, lr: lr * decay ** d }));
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('BertSelfAttention', (c: Cfg) => new BertSelfAttention(c.hiddenSize, c.numHeads, c));
registerModule('BertMLP', (c: Cfg) => new BertMLP(c.hiddenSize, c.intermediateSize));
registerModule('BertLayer', (c: Cfg) => new BertLayer(c as BertConfig));
registerModule('BertEmbeddings', (c: Cfg) => new BertEmbeddings(c as BertConfig));
registerModule('BertEncoder', (c: Cfg) => new BertEncoder(c as BertConfig));
registerModule('MlmTransform', (c: Cfg) => new MlmTransform(c as BertConfig));
registerModule('BertForMaskedLM', (c: Cfg) => new BertForMaskedLM(c as BertConfig));
registerModule('BertForSequenceClassification', (c: Cfg) => new BertForSequenceClassification(c as BertConfig, c));
