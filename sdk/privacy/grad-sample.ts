/**
 * Per-example gradients and per-example gradient clipping, the core of DP-SGD (Opacus's
 * `GradSampleModule` and ghost clipping). One forward and one backward of the whole batch capture,
 * for every layer with trainable parameters, its input (a forward hook) and the gradient of its
 * output (a retained gradient); engine kernels then turn them into per-example gradients (Linear:
 * outer products summed over positions; Conv2d: the unfolded input times the output gradient;
 * Embedding: a scatter by index; LayerNorm/GroupNorm: Σ dy ⊙ x̂; MultiHeadAttention: Linear's rule
 * on each input projection, captured by its projection tap; LearnedPositionalEmbedding: the output
 * gradient on the rows used; SimpleRNN/LSTM/GRU: Linear's rule over the time axis on the input and
 * recurrent projections, captured by the gate tap of an unrolled forward) — never a loop of
 * batch-size-1 backward passes.
 *
 * Ghost clipping gets each example's gradient norm without materialising the per-example gradients
 * (for Linear over sequences and Conv2d by the Gram trick ‖AᵀG‖² = ⟨AAᵀ, GGᵀ⟩ where cheaper, in
 * bounded chunks otherwise; Embedding by merging rows of equal index), then forms the clipped sum
 * Σ_i c_i g_i as the gradient of Σ_i c_i·loss_i: each layer's output gradient rescaled per example
 * by c_i and pushed through the layer's weight-gradient kernel (the second backward, restricted to
 * the parameters — the input-gradient chain is not recomputed, since c_i·dy_i is exactly what a
 * second backward would deliver to the layer when no layer mixes examples).
 */
import { checkNumber, checkOptions, describe } from '../args.js';
import { noGrad, isGradEnabled } from '../autograd.js';
import { scalar, zeros } from '../creation.js';
import { ArgumentError, EdgegradError, ShapeError } from '../errors.js';
import type { LossFn } from '../losses.js';
import { keep, tidy } from '../memory.js';
import { BatchNorm, Conv2d, Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { GroupNorm } from '../nn/groupnorm.js';
import { flattenedLead, LearnedPositionalEmbedding, MultiHeadAttention } from '../nn/attention.js';
import { GPT } from '../nn/transformer.js';
import { Recurrent } from '../nn/recurrent.js';
import { concat } from '../ops.js';
import { resolvePadding } from '../nn/functional.js';
import * as F from '../nn/functional.js';
import { assertModule, type HookHandle, type Module } from '../nn/module.js';
import { call, type Engine } from '../runtime.js';
import { assertTensor, fromHandle, Tensor } from '../tensor.js';

/** How per-example gradients are clipped: the whole gradient, each parameter separately, or flat without materialising them. */
export type Clipping = 'flat' | 'perLayer' | 'ghost';
/** How `lossFn` reduces over the batch (Opacus's `loss_reduction`). */
export type LossReduction = 'mean' | 'sum';

/**
 * A model DP-SGD cannot train as it is: a layer that mixes examples (BatchNorm) or a layer with
 * trainable parameters and no per-example gradient rule. `path` is the layer's dotted path in the
 * model (`''` for the model itself), `layer` its class name.
 */
export class UnsupportedLayerError extends ArgumentError {
  /**
   * @param path - Dotted path of the layer in the model (`''` for the model itself).
   * @param layer - The layer's class name.
   * @param reason - Why DP-SGD cannot train it.
   */
  constructor(readonly path: string, readonly layer: string, reason: string) {
    super(`${path === '' ? '(the model itself)' : path} (${layer}): ${reason}; see eg.privacy.validate(model)`);
  }
}

/** Options of `clippedGradientSum`. */
export interface ClipOptions {
  /** The clipping bound C > 0; with `'perLayer'`, one per trainable parameter in `model.namedParameters()` order. */
  maxGradNorm: number | number[];
  /** How the per-example gradients are clipped: one norm over all parameters (`'flat'`), one bound per parameter (`'perLayer'`), or flat clipping without materializing per-example gradients (`'ghost'`). */
  clipping: Clipping;
  /** How `lossFn` reduces over the batch (default `'mean'`). */
  lossReduction?: LossReduction;
}

/** What `clippedGradientSum` returns besides setting the gradients. */
export interface ClippedGradients {
  /** The batch loss as `lossFn` returned it. */
  loss: Tensor;
  /** The model's outputs on the batch. */
  pred: Tensor;
  /** Each example's total gradient norm before clipping. */
  norms: Float32Array;
}

// ------------------------------------------------------------------------------------- engine ops

const op = (f: (e: Engine) => number): Tensor => fromHandle(call(f));
/** A second handle to `t` (same storage and autograd state), kept from any tidy (the model's forward may run one). */
const alias = (t: Tensor): Tensor => keep(op((e) => e.tensor_clone_handle(t.handle)));
/** `[B, K, N]`: per example Σ_t a[i,t]ᵀ g[i,t]. */
const outer = (a: Tensor, g: Tensor): Tensor => op((e) => e.op_grad_sample_outer(a.handle, g.handle));
const outerNormsSq = (a: Tensor, g: Tensor): Tensor => op((e) => e.op_grad_sample_outer_norms_sq(a.handle, g.handle));

/** Squared norms `[B]` over every axis but the first (no squared copy of the gradients). */
const sumSq = (g: Tensor): Tensor => op((e) => e.op_per_example_norms_sq(g.handle));
/** Σ_i c_i g_i for per-example `g [B, ...shape]` and `c [B]`. */
function weighted(g: Tensor, c: Tensor): Tensor {
  return c.reshape([1, -1]).matmul(g.reshape([g.shape[0], -1])).reshape(g.shape.slice(1));
}
/** `[B, ...rest, last]` → `[B, T, last]`. */
function seq(t: Tensor): Tensor {
  return t.reshape([t.shape[0], -1, t.shape[t.rank - 1]]);
}

// ------------------------------------------------------------------------------------- layer rules

/** One forward of a layer: its input and its output's gradient (rescaled to the per-example convention). */
interface Call {
  input: Tensor;
  dy: Tensor;
  /** MultiHeadAttention: which input projection (-1 packed q|k|v, 0 q, 1 k, 2 v); else -1. */
  part: number;
  /** LearnedPositionalEmbedding: the first position the forward used; else 0. */
  offset: number;
}

/** How to get one parameter's per-example gradients, their norms and their weighted sum. */
interface ParamRule {
  /** `[B, ...param.shape]`. */
  perSample(calls: Call[]): Tensor;
  /** Squared per-example norms `[B]`, without materialising the gradients where the layer allows. */
  normSq?(calls: Call[]): Tensor;
  /** Σ_i c_i g_i (`c [B]`), by the layer's weight-gradient kernel. */
  weightedSum?(calls: Call[], c: Tensor): Tensor;
}

const sumOver = (calls: Call[], f: (c: Call) => Tensor): Tensor => calls.map(f).reduce((a, b) => a.add(b));

function linearRules(): { weight: Required<ParamRule>; bias: ParamRule } {
  return {
    weight: {
      perSample: (calls) => sumOver(calls, (c) => outer(seq(c.dy), seq(c.input))),
      normSq: (calls) => (calls.length === 1 ? outerNormsSq(seq(calls[0].dy), seq(calls[0].input)) : sumSq(sumOver(calls, (c) => outer(seq(c.dy), seq(c.input))))),
      // One example holding every position of every example, its output gradients scaled by c_i.
      weightedSum: (calls, coef) => sumOver(calls, (c) => {
        const dy = seq(c.dy);
        const scaled = dy.mul(coef.reshape([-1, 1, 1])).reshape([1, -1, dy.shape[2]]);
        return outer(scaled, c.input.reshape([1, -1, c.input.shape[c.input.rank - 1]])).reshape([dy.shape[2], -1]);
      }),
    },
    bias: { perSample: (calls) => sumOver(calls, (c) => seq(c.dy).sum(1)) },
  };
}

/**
 * MultiHeadAttention's own projection parameters: each projection is a Linear over the sequence
 * (Linear's rules on the calls the projection tap recorded for it); the packed `in_proj_weight`
 * `[3E, E]` and `in_proj_bias` `[3E]` stack the q, k, v rows, so a cross-attention forward (three
 * separate projections) fills them block by block. `out_proj` is a Linear with its own rules.
 */
function attentionRules(m: MultiHeadAttention): Record<string, ParamRule> {
  const e = m.embedDim;
  const lin = linearRules();
  const part = (calls: Call[], i: number): Call[] => calls.filter((c) => c.part === i);
  const batchOf = (calls: Call[]): number => calls[0].dy.shape[0];
  /** The rows of the packed parameter: the packed calls' result plus the q, k, v blocks (zeros where none), concatenated on `axis`. */
  const stacked = (calls: Call[], f: (cs: Call[]) => Tensor, zero: () => Tensor, axis: number): Tensor => {
    const whole = part(calls, -1);
    const blocks = [0, 1, 2].map((i) => part(calls, i));
    const parts: Tensor[] = [];
    if (whole.length > 0) parts.push(f(whole));
    if (blocks.some((b) => b.length > 0)) parts.push(concat(blocks.map((b) => (b.length > 0 ? f(b) : zero())), axis));
    return parts.reduce((a, b) => a.add(b));
  };
  const rules: Record<string, ParamRule> = {};
  const own = new Set(m.namedParameters().map(([n]) => n));
  if (own.has('in_proj_weight')) {
    rules.in_proj_weight = {
      perSample: (calls) => stacked(calls, lin.weight.perSample, () => zeros([batchOf(calls), e, e]), 1),
      // The blocks are disjoint rows, so the squared norms add up; mixed packed and split calls overlap.
      normSq: (calls) => (part(calls, -1).length > 0 && part(calls, -1).length < calls.length
        ? sumSq(rules.in_proj_weight.perSample(calls))
        : [-1, 0, 1, 2].map((i) => part(calls, i)).filter((b) => b.length > 0).map(lin.weight.normSq).reduce((a, b) => a.add(b))),
      weightedSum: (calls, coef) => stacked(calls, (cs) => lin.weight.weightedSum(cs, coef), () => zeros([e, e]), 0),
    };
  } else {
    const dims = [e, m.kdim, m.vdim];
    ['q_proj_weight', 'k_proj_weight', 'v_proj_weight'].forEach((name, i) => {
      const only = <A extends unknown[]>(f: (cs: Call[], ...a: A) => Tensor, zero: (calls: Call[]) => Tensor) => (calls: Call[], ...a: A): Tensor => {
        const cs = part(calls, i);
        return cs.length > 0 ? f(cs, ...a) : zero(calls);
      };
      rules[name] = {
        perSample: only(lin.weight.perSample, (calls) => zeros([batchOf(calls), e, dims[i]])),
        normSq: only(lin.weight.normSq, (calls) => zeros([batchOf(calls)])),
        weightedSum: only(lin.weight.weightedSum, () => zeros([e, dims[i]])),
      };
    });
  }
  if (own.has('in_proj_bias')) {
    rules.in_proj_bias = { perSample: (calls) => stacked(calls, lin.bias.perSample, () => zeros([batchOf(calls), e]), 1) };
  }
  return rules;
}

/**
 * A position table `weight [maxLen, D]` added to `[B, ..., T, D]` (LearnedPositionalEmbedding, GPT's
 * wpe): example i's gradient is its output gradient (summed over any axes between the batch and the
 * positions) on the rows of the positions the forward used, zero elsewhere.
 */
function positionalRules(maxLen: number, D: number): Record<string, ParamRule> {
  /** `[B, T, D]`: the output gradient summed over the axes between batch and time. */
  const perPosition = (c: Call): Tensor => c.dy.reshape([c.dy.shape[0], -1, c.dy.shape[c.dy.rank - 2], D]).sum(1);
  /** Rows `offset..offset+T` of a `[..., maxLen, D]` table holding `t [..., T, D]`, zeros elsewhere. */
  const place = (t: Tensor, offset: number, axis: number): Tensor => {
    const lead = t.shape.slice(0, axis);
    const len = t.shape[axis];
    const pieces: Tensor[] = [];
    if (offset > 0) pieces.push(zeros([...lead, offset, D]));
    pieces.push(t);
    if (maxLen - offset - len > 0) pieces.push(zeros([...lead, maxLen - offset - len, D]));
    return pieces.length === 1 ? t : concat(pieces, axis);
  };
  const perSample = (calls: Call[]): Tensor => sumOver(calls, (c) => place(perPosition(c), c.offset, 1));
  return {
    weight: {
      perSample,
      normSq: (calls) => sumSq(calls.length === 1 ? perPosition(calls[0]) : perSample(calls)),
      weightedSum: (calls, coef) => sumOver(calls, (c) => place(weighted(perPosition(c), coef), c.offset, 0)),
    },
  };
}

/**
 * SimpleRNN/LSTM/GRU (any numLayers, bidirectional): each layer-direction's gates are
 * `x_t·W_ihᵀ + b_ih + h_{t−1}·W_hhᵀ + b_hh`, two Linears over time. Its unrolled forward's gate tap
 * records part `3k` (the input projection over the whole sequence) and `3k + 1` (each step's
 * recurrent projection; the capture stacks the steps on the time axis), k = layer · directions +
 * direction. The reset-before GRU's n rows of `W_hh`/`b_hh` act on r ⊙ h: part `3k + 2`, its own
 * Linear, whose rows are stacked under the r|z rows' (disjoint rows: the squared norms add).
 */
function recurrentRules(m: Recurrent): Record<string, ParamRule> {
  const lin = linearRules();
  const rules: Record<string, ParamRule> = {};
  const own = new Set(m.namedParameters().map(([n]) => n));
  const H = m.hiddenSize;
  const batchOf = (calls: Call[]): number => calls[0].dy.shape[0];
  /** Linear's rules on the calls of `part`, for a weight block `[rows, cols]` (zeros where it got no call). */
  const block = (part: number, rows: number, cols: number): { weight: Required<ParamRule>; bias: ParamRule } => {
    const only = <A extends unknown[]>(f: (cs: Call[], ...a: A) => Tensor, zero: (calls: Call[]) => Tensor) => (calls: Call[], ...a: A): Tensor => {
      const cs = calls.filter((c) => c.part === part);
      return cs.length > 0 ? f(cs, ...a) : zero(calls);
    };
    return {
      weight: {
        perSample: only(lin.weight.perSample, (calls) => zeros([batchOf(calls), rows, cols])),
        normSq: only(lin.weight.normSq, (calls) => zeros([batchOf(calls)])),
        weightedSum: only(lin.weight.weightedSum, () => zeros([rows, cols])),
      },
      bias: { perSample: only(lin.bias.perSample, (calls) => zeros([batchOf(calls), rows])) },
    };
  };
  for (let l = 0; l < m.numLayers; l++) {
    for (let d = 0; d < m.numDirections; d++) {
      const sfx = `l${l}${d === 1 ? '_reverse' : ''}`;
      const k = l * m.numDirections + d;
      const { wIh, wHh } = m.weights(l, d);
      const ih = block(3 * k, wIh.shape[0], wIh.shape[1]);
      let hh = block(3 * k + 1, wHh.shape[0], H);
      if (m.cell === 'gruResetBefore') {
        const rz = block(3 * k + 1, 2 * H, H);
        const n = block(3 * k + 2, H, H);
        hh = {
          weight: {
            perSample: (calls) => concat([rz.weight.perSample(calls), n.weight.perSample(calls)], 1),
            normSq: (calls) => rz.weight.normSq(calls).add(n.weight.normSq(calls)),
            weightedSum: (calls, c) => concat([rz.weight.weightedSum(calls, c), n.weight.weightedSum(calls, c)], 0),
          },
          bias: { perSample: (calls) => concat([rz.bias.perSample(calls), n.bias.perSample(calls)], 1) },
        };
      }
      for (const [kind, r] of [['ih', ih], ['hh', hh]] as const) {
        rules[`weight_${kind}_${sfx}`] = r.weight;
        if (own.has(`bias_${kind}_${sfx}`)) rules[`bias_${kind}_${sfx}`] = r.bias;
      }
    }
  }
  return rules;
}

/** A recurrent layer's calls merged per part: its per-step recurrent projections stacked on the time axis (one Linear call each). */
function mergeSteps(calls: Call[]): Call[] {
  const parts = [...new Set(calls.map((c) => c.part))];
  return parts.map((part) => {
    const cs = calls.filter((c) => c.part === part);
    if (cs.length === 1) return cs[0];
    return { input: concat(cs.map((c) => seq(c.input)), 1), dy: concat(cs.map((c) => seq(c.dy)), 1), part, offset: 0 };
  });
}

/** The options a Conv2d layer ran with, as the engine takes them. */
function convArgs(m: Conv2d, x: Tensor): [Uint32Array, Uint32Array, Uint32Array, Uint32Array, number] {
  const cfg = m.getConfig() as { stride?: number | [number, number]; padding?: F.Padding; dilation?: number | [number, number]; groups?: number };
  const pair = (v: number | [number, number] | undefined): [number, number] => (v === undefined ? [1, 1] : typeof v === 'number' ? [v, v] : v);
  const stride = pair(cfg.stride);
  const dilation = pair(cfg.dilation);
  const pad = resolvePadding(cfg.padding ?? 'valid', x.shape[1], x.shape[2], m.kernelSize, stride, dilation);
  return [Uint32Array.from(m.kernelSize), Uint32Array.from(stride), Uint32Array.from(pad), Uint32Array.from(dilation), cfg.groups ?? 1];
}

function conv2dRules(m: Conv2d): Record<string, ParamRule> {
  const perSample = (c: Call): Tensor => {
    const [k, s, p, d, g] = convArgs(m, c.input);
    return op((e) => e.op_grad_sample_conv2d(c.input.handle, c.dy.handle, k, s, p, d, g));
  };
  return {
    weight: {
      perSample: (calls) => sumOver(calls, perSample),
      normSq: (calls) => {
        if (calls.length > 1) return sumSq(sumOver(calls, perSample));
        const c = calls[0];
        const [k, s, p, d, g] = convArgs(m, c.input);
        return op((e) => e.op_grad_sample_conv2d_norms_sq(c.input.handle, c.dy.handle, k, s, p, d, g));
      },
      weightedSum: (calls, coef) => sumOver(calls, (c) => {
        const [k, s, p, d, g] = convArgs(m, c.input);
        return op((e) => e.op_conv2d_weight_grad(c.input.handle, c.dy.handle, k, s, p, d, g, coef.handle));
      }),
    },
    bias: { perSample: (calls) => sumOver(calls, (c) => c.dy.sum([1, 2])) },
  };
}

function embeddingRules(m: Embedding): Record<string, ParamRule> {
  const V = m.numEmbeddings;
  return {
    weight: {
      perSample: (calls) => sumOver(calls, (c) => op((e) => e.op_grad_sample_embedding(c.input.handle, c.dy.handle, V))),
      normSq: (calls) => (calls.length === 1
        ? op((e) => e.op_grad_sample_embedding_norms_sq(calls[0].input.handle, calls[0].dy.handle))
        : sumSq(sumOver(calls, (c) => op((e) => e.op_grad_sample_embedding(c.input.handle, c.dy.handle, V))))),
      // The whole batch as one example, output gradients scaled by c_i: one scatter.
      weightedSum: (calls, coef) => sumOver(calls, (c) => {
        const D = c.dy.shape[c.dy.rank - 1];
        const scaled = c.dy.reshape([c.dy.shape[0], -1, D]).mul(coef.reshape([-1, 1, 1])).reshape([1, -1, D]);
        const idx = c.input.reshape([1, -1]);
        return op((e) => e.op_grad_sample_embedding(idx.handle, scaled.handle, V)).reshape([V, D]);
      }),
    },
  };
}

/** LayerNorm/GroupNorm: per example, weight Σ_positions dy ⊙ x̂, bias Σ_positions dy (shape `paramShape`). */
function normRules(normalize: (x: Tensor) => Tensor, paramShape: number[]): Record<string, ParamRule> {
  const size = paramShape.reduce((a, b) => a * b, 1);
  const perExample = (t: Tensor): Tensor => t.reshape([t.shape[0], -1, size]).sum(1).reshape([t.shape[0], ...paramShape]);
  return {
    weight: { perSample: (calls) => sumOver(calls, (c) => perExample(c.dy.mul(normalize(c.input)))) },
    bias: { perSample: (calls) => sumOver(calls, (c) => perExample(c.dy)) },
  };
}

/** The per-example rules of a layer's own parameters, or null when it has none. */
function rulesFor(m: Module): Record<string, ParamRule> | null {
  if (m instanceof Linear) return linearRules();
  if (m instanceof Conv2d) return conv2dRules(m);
  if (m instanceof Embedding) return embeddingRules(m);
  if (m instanceof LayerNorm) {
    const eps = m.opts.eps ?? 1e-5;
    const k = m.normalizedShape.length;
    return normRules((x) => F.layerNorm(x, k, { eps }), m.normalizedShape);
  }
  if (m instanceof GroupNorm) return normRules((x) => m.normalize(x), [m.numChannels]);
  if (m instanceof MultiHeadAttention) return attentionRules(m);
  if (m instanceof LearnedPositionalEmbedding) return positionalRules(m.maxLen, m.dim);
  if (m instanceof Recurrent) return recurrentRules(m);
  return null;
}

/** Whether `m`'s own parameters have a per-example gradient rule (what `validate` checks). */
export function hasPerSampleRule(m: Module): boolean {
  return rulesFor(m) !== null;
}

/** Whether a layer applies a fused ReLU to its output (whose gradient must then be masked). */
function fusedRelu(m: Module): boolean {
  return (m instanceof Linear || m instanceof Conv2d) && (m.getConfig() as { activation?: unknown }).activation === 'relu';
}

// ------------------------------------------------------------------------------------- capture

/** A layer with trainable parameters of its own, the rules for them and what its forwards saw. */
interface Layer {
  path: string;
  module: Module;
  /** Own trainable parameters: full dotted name, short name, tensor. */
  params: { name: string; short: string; tensor: Tensor }[];
  rules: Record<string, ParamRule>;
  /** Set for a GPT's `transformer.wpe`, whose table the GPT reads directly: captured by its position tap. */
  gpt: GPT | null;
  /** `lead`: the shape `applyToLastAxis` flattened the input's leading axes from, else null. */
  seen: { input: Tensor; output: Tensor; part: number; offset: number; lead: number[] | null }[];
  calls: Call[];
}

/** The layers of `model` that own trainable parameters; refuses BatchNorm and layers without a rule. */
function collectLayers(model: Module): Layer[] {
  const layers: Layer[] = [];
  const owner = new Map<Tensor, string>();
  const wpe = new Map<Module, GPT>();
  for (const [, m] of model.namedModules()) if (m instanceof GPT) wpe.set(m.getModule('transformer').getModule('wpe'), m);
  for (const [path, m] of model.namedModules()) {
    if (m instanceof BatchNorm) {
      throw new UnsupportedLayerError(path, m.className, 'BatchNorm mixes examples through its batch statistics, so per-example gradients do not exist; replace it by GroupNorm (eg.privacy.fix(model))');
    }
    const own = m.namedParameters().filter(([n, p]) => !n.includes('.') && p.requiresGrad);
    if (own.length === 0) continue;
    const gpt = wpe.get(m) ?? null;
    const rules = gpt ? positionalRules(gpt.config.blockSize, gpt.config.nEmbd) : rulesFor(m);
    if (rules === null) {
      throw new UnsupportedLayerError(path, m.className, `the engine has no per-example gradient rule for ${m.className} (trainable ${own.map(([n]) => n).join(', ')}); freeze it or use Linear, Conv2d, Embedding, LayerNorm, GroupNorm, attention or recurrent layers`);
    }
    for (const [n, p] of own) {
      const other = owner.get(p);
      if (other !== undefined) throw new UnsupportedLayerError(path, m.className, `its parameter '${n}' is the same tensor as ${other} (tied weights); per-example gradients of a shared parameter are not supported: untie it or freeze it`);
      owner.set(p, path ? `${path}.${n}` : n);
    }
    layers.push({
      path, module: m, rules, gpt, seen: [], calls: [],
      params: own.map(([short, tensor]) => ({ name: path ? `${path}.${short}` : short, short, tensor })),
    });
  }
  return layers;
}

interface Captured {
  layers: Layer[];
  loss: Tensor;
  pred: Tensor;
  batch: number;
}

/**
 * One forward and backward of the batch with every supported layer's input and output gradient
 * captured. The parameters' `.grad` are not touched. Runs inside the caller's `tidy`; the handles
 * it keeps of the layers' inputs and outputs go to `kept`, which the caller disposes afterwards.
 */
function capture(fn: string, model: Module, lossFn: LossFn, x: Tensor, y: Tensor, reduction: LossReduction, kept: Tensor[]): Captured {
  assertModule(model, `${fn}()`);
  if (typeof lossFn !== 'function') throw new ArgumentError(`${fn}(): lossFn must be a function (pred, target) => loss, got ${describe(lossFn)}`);
  assertTensor(x, `${fn}(): x must be a Tensor`);
  assertTensor(y, `${fn}(): y must be a Tensor`);
  if (reduction !== 'mean' && reduction !== 'sum') throw new ArgumentError(`${fn}(): lossReduction must be 'mean' or 'sum', got ${describe(reduction)}`);
  if (x.rank < 1 || x.shape[0] === 0) throw new ShapeError(`${fn}(): x needs a non-empty batch as its first axis, got shape [${x.shape.join(', ')}] (an empty Poisson batch contributes no gradient: skip the step's clipping and add only the noise)`);
  if (y.rank < 1 || y.shape[0] !== x.shape[0]) throw new ShapeError(`${fn}(): y must have one row per example of x (${x.shape[0]}), got shape [${y.shape.join(', ')}]`);
  if (!isGradEnabled()) throw new ArgumentError(`${fn}() needs gradients: it cannot run inside noGrad()`);
  const layers = collectLayers(model);
  if (layers.length === 0) throw new ArgumentError(`${fn}(): the model has no trainable parameters`);
  const batch = x.shape[0];
  const handles: HookHandle[] = [];
  // The parameters stop requiring gradients during the pass, so the backward computes only the
  // gradients of the layers' outputs (no batch weight gradient, nothing accumulated into .grad);
  // a layer's output that then needs no gradient becomes a leaf that does, which the backward fills.
  const all = layers.flatMap((l) => l.params.map((p) => p.tensor));
  let pred: Tensor;
  let loss: Tensor;
  try {
    for (const p of all) p.requiresGrad = false;
    for (const l of layers) {
      const record = (input: Tensor, output: Tensor, part: number, offset: number, lead: number[] | null = null): void => {
        if (output.requiresGrad) output.retainGrad();
        else output.requiresGrad = true;
        // Second handles (same storage and autograd state): the caller may dispose its own right
        // after the forward (applyToLastAxis, the Transformer layers), before the backward fills the gradient.
        const seen = { input: alias(input), output: alias(output), part, offset, lead };
        kept.push(seen.input, seen.output);
        l.seen.push(seen);
      };
      const m = l.module;
      const gpt = l.gpt;
      if (gpt !== null) {
        gpt.positionTap = (x0) => record(x0, x0, -1, 0);
        handles.push({ remove: () => { gpt.positionTap = null; } });
        continue;
      }
      if (m instanceof MultiHeadAttention) {
        m.projectionTap = (part, input, output) => record(input, output, part, 0);
        handles.push({ remove: () => { m.projectionTap = null; } });
        continue;
      }
      if (m instanceof Recurrent) {
        m.gateTap = (part, input, gates) => record(input, gates, part, 0);
        handles.push({ remove: () => { m.gateTap = null; } });
        continue;
      }
      handles.push(m.registerForwardHook((_m, inputs, output) => {
        const input = inputs[0];
        if (!(input instanceof Tensor)) throw new ArgumentError(`${fn}(): layer ${l.path} (${m.className}) was called with ${describe(input)} as its input, not a Tensor`);
        let offset = 0;
        if (m instanceof LearnedPositionalEmbedding) {
          if (input.rank < 3) throw new UnsupportedLayerError(l.path, m.className, `its input [${input.shape.join(', ')}] has no batch axis before [time, dim], so its gradients cannot be split per example`);
          offset = (inputs[1] as number | undefined) ?? 0;
        }
        record(input, output, -1, offset, flattenedLead(m));
      }));
    }
    pred = model.forward(x);
    // A layer whose own forward never ran cannot have had its parameters captured: either it is
    // unused or its parent reads them directly (GPT's wpe); both would silently get zero gradients.
    const idle = layers.find((l) => l.seen.length === 0);
    if (idle) throw new UnsupportedLayerError(idle.path, idle.module.className, `its forward did not run on the batch, so its parameters (${idle.params.map((p) => p.short).join(', ')}) have no per-example gradients (Opacus: "per sample gradient is not initialized"); if its parent uses them directly there is no per-example rule for that use; freeze the layer or remove it`);
    loss = lossFn(pred, y);
    if (!(loss instanceof Tensor) || loss.size !== 1) throw new ArgumentError(`${fn}(): lossFn must return the batch loss as a one-element Tensor (reduced with '${reduction}'), got ${loss instanceof Tensor ? `shape [${loss.shape.join(', ')}]` : describe(loss)}`);
    // A loss that no layer reaches has zero per-example gradients (no output gets one).
    if (loss.requiresGrad) loss.backward();
  } finally {
    for (const h of handles) h.remove();
    for (const p of all) p.requiresGrad = true;
  }
  // The per-example convention: the gradient of example i's own loss term.
  const scale = reduction === 'mean' ? batch : 1;
  noGrad(() => {
    for (const l of layers) {
      const relu = fusedRelu(l.module);
      for (const seen of l.seen) {
        const { part, offset, lead } = seen;
        // Rows flattened by applyToLastAxis: back to [...lead, features], the batch first.
        const unflat = (t: Tensor): Tensor => (lead !== null && t.shape[0] === lead.reduce((a, b) => a * b, 1) ? t.reshape([...lead, ...t.shape.slice(1)]) : t);
        const input = unflat(seen.input);
        const output = unflat(seen.output);
        if (input.shape[0] !== batch || output.shape[0] !== batch) {
          throw new UnsupportedLayerError(l.path, l.module.className, `its input [${input.shape.join(', ')}] or output [${output.shape.join(', ')}] does not have the batch (${batch}) as its first axis, so its gradients cannot be split per example`);
        }
        const g = seen.output.grad;
        if (g === null) continue; // the output did not reach the loss
        let dy = unflat(relu ? g.mul(seen.output.greater(0)) : g);
        if (scale !== 1) dy = dy.mul(scale);
        l.calls.push({ input, dy, part, offset });
      }
      if (l.module instanceof Recurrent) l.calls = mergeSteps(l.calls);
    }
  });
  return { layers, loss, pred, batch };
}

/** The per-example gradients of one parameter (zeros when its layer did not reach the loss). */
function perSampleOf(l: Layer, p: Layer['params'][number], batch: number): Tensor {
  if (l.calls.length === 0) return zeros([batch, ...p.tensor.shape]);
  return l.rules[p.short].perSample(l.calls);
}

// ------------------------------------------------------------------------------------- public API

/**
 * Per-example gradients of every trainable parameter of `model` on the batch (`x`, `y`): a Map from
 * the parameter's name (as in `model.namedParameters()`) to `[B, ...param.shape]`, example i's entry
 * being the gradient of example i's own loss term (with `lossReduction: 'mean'`, the default, the
 * batch-mean loss's gradient times B, as Opacus). One forward and one backward of the whole batch;
 * the parameters' `.grad` are left unchanged. The tensors are the caller's (dispose them). Throws an
 * `UnsupportedLayerError` naming the layer for BatchNorm or a trainable layer without a rule
 * (supported: Linear, incl. sequence inputs `[B, ..., in]`; Conv2d with stride, padding, dilation
 * and groups; Embedding; LayerNorm; GroupNorm; MultiHeadAttention's projections (packed or separate
 * q/k/v, self or cross), hence TransformerEncoderLayer and GPT blocks; LearnedPositionalEmbedding;
 * SimpleRNN, LSTM and GRU (stacked, bidirectional, masked, reset-after or reset-before), whose
 * forward then runs unrolled step by step instead of the fused kernel).
 * A layer with trainable parameters whose forward does not run on the batch is refused too.
 */
export function perSampleGradients(model: Module, lossFn: LossFn, x: Tensor, y: Tensor, o: { lossReduction?: LossReduction } = {}): Map<string, Tensor> {
  o = checkOptions(o, 'perSampleGradients options');
  const kept: Tensor[] = [];
  try {
    return tidy(() => {
      const cap = capture('perSampleGradients', model, lossFn, x, y, o.lossReduction ?? 'mean', kept);
      return noGrad(() => {
        const out = new Map<string, Tensor>();
        for (const l of cap.layers) for (const p of l.params) out.set(p.name, perSampleOf(l, p, cap.batch));
        return out;
      });
    });
  } finally {
    for (const t of kept) t.dispose();
  }
}

function checkBound(v: unknown, what: string): number {
  const c = checkNumber(v, what, { finite: true });
  if (!(c > 0)) throw new ArgumentError(`${what} must be > 0, got ${c}`);
  return c;
}

/**
 * Sets each trainable parameter's `.grad` to Σ_i clip_C(g_i), the sum over the batch of the
 * per-example gradients clipped to norm C (no averaging, no noise: DP-SGD adds those), and returns
 * the batch loss, the outputs and each example's gradient norm before clipping. The clip factor is
 * Opacus's `min(1, C / (‖g_i‖ + 1e-6))`.
 * - `'flat'`: per-example gradients materialised, each example's whole gradient clipped to C.
 * - `'perLayer'`: each parameter's per-example gradient clipped to its own bound (`maxGradNorm` an
 *   array, one per trainable parameter in `model.namedParameters()` order).
 * - `'ghost'`: the same result as `'flat'`, with the norms computed without materialising
 *   per-example gradients (Linear, Conv2d, Embedding) and the clipped sum by the layers'
 *   weight-gradient kernels on per-example-rescaled output gradients.
 */
export function clippedGradientSum(model: Module, lossFn: LossFn, x: Tensor, y: Tensor, o: ClipOptions): ClippedGradients {
  o = checkOptions(o, 'clippedGradientSum options');
  if (o === undefined || o === null) throw new ArgumentError('clippedGradientSum() needs options { maxGradNorm, clipping }');
  const clipping = o.clipping;
  if (clipping !== 'flat' && clipping !== 'perLayer' && clipping !== 'ghost') {
    throw new ArgumentError(`clippedGradientSum(): clipping must be 'flat', 'perLayer' or 'ghost', got ${describe(clipping)}`);
  }
  let bounds: number[];
  if (clipping === 'perLayer') {
    if (!Array.isArray(o.maxGradNorm)) throw new ArgumentError(`clippedGradientSum(): perLayer clipping needs maxGradNorm as an array (one bound per trainable parameter), got ${describe(o.maxGradNorm)}`);
    bounds = o.maxGradNorm.map((c, i) => checkBound(c, `clippedGradientSum(): maxGradNorm[${i}]`));
  } else {
    if (Array.isArray(o.maxGradNorm)) throw new ArgumentError(`clippedGradientSum(): ${clipping} clipping needs one maxGradNorm number; an array is for 'perLayer'`);
    bounds = [checkBound(o.maxGradNorm, 'clippedGradientSum(): maxGradNorm')];
  }
  let norms: Float32Array = new Float32Array(0);
  const kept: Tensor[] = [];
  try {
    return { ...clippedSum(), norms };
  } finally {
    for (const t of kept) t.dispose();
  }

  // A nested function: the tidy reads the checked options and writes `norms`.
  function clippedSum(): { loss: Tensor; pred: Tensor } {
    return tidy(() => {
      const cap = capture('clippedGradientSum', model, lossFn, x, y, o.lossReduction ?? 'mean', kept);
      const params = cap.layers.flatMap((l) => l.params.map((p) => ({ l, p })));
      if (clipping === 'perLayer' && bounds.length !== params.length) {
        throw new ArgumentError(`clippedGradientSum(): perLayer clipping needs ${params.length} bounds (one per trainable parameter: ${params.map(({ p }) => p.name).join(', ')}), got ${bounds.length}`);
      }
      const sums = noGrad(() => {
        const factor = (normSq: Tensor, c: number): [Tensor, Tensor] => {
          const norm = normSq.sqrt();
          return [norm, scalar(c).div(norm.add(1e-6)).clamp(undefined, 1)];
        };
        if (clipping === 'ghost') {
          // Norms first (no per-example gradient kept), then one weighted sum per parameter. A rule
          // without a ghost norm (biases, norm layers: small) materialises once for both.
          const small = new Map<number, Tensor>();
          const sq = params.map(({ l, p }, k) => {
            if (l.calls.length === 0) return zeros([cap.batch]);
            const r = l.rules[p.short];
            if (r.normSq) return r.normSq(l.calls);
            const g = r.perSample(l.calls);
            small.set(k, g);
            return sumSq(g);
          });
          const [norm, c] = factor(sq.reduce((a, b) => a.add(b)), bounds[0]);
          norms = readNorms(norm);
          return params.map(({ l, p }, k) => {
            if (l.calls.length === 0) return zeros(p.tensor.shape);
            const r = l.rules[p.short];
            const g = small.get(k);
            return g !== undefined ? weighted(g, c) : r.weightedSum ? r.weightedSum(l.calls, c) : weighted(r.perSample(l.calls), c);
          });
        }
        const grads = params.map(({ l, p }) => perSampleOf(l, p, cap.batch));
        const sq = grads.map(sumSq);
        if (clipping === 'flat') {
          const [norm, c] = factor(sq.reduce((a, b) => a.add(b)), bounds[0]);
          norms = readNorms(norm);
          return grads.map((g) => weighted(g, c));
        }
        norms = readNorms(sq.reduce((a, b) => a.add(b)).sqrt());
        return grads.map((g, k) => weighted(g, factor(sq[k], bounds[k])[1]));
      });
      params.forEach(({ p }, k) => { p.tensor.grad = sums[k]; });
      return { loss: cap.loss, pred: cap.pred };
    });
  }
}

/** Reads the per-example norms back, refusing non-finite ones (a NaN would silently poison the step). */
function readNorms(norm: Tensor): Float32Array {
  const v = norm.dataSync() as Float32Array;
  const bad = v.findIndex((n) => !Number.isFinite(n));
  if (bad >= 0) throw new EdgegradError(`per-example gradient norm of example ${bad} is ${v[bad]}: the model's outputs or the loss are not finite on it`);
  return Float32Array.from(v);
}
