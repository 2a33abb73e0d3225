/**
 * Gradient attributions (Captum's names and definitions): `Saliency`, `InputXGradient`,
 * `IntegratedGradients`, `GradientShap`, and `NoiseTunnel` (SmoothGrad, SmoothGrad², VarGrad)
 * wrapping any of them. Steps and samples run as batched passes of `internalBatchSize` rows, so
 * memory is bounded by that option, not by `nSteps` or the number of samples; accumulation runs in
 * a fixed order, so the batch option does not change a single bit of the result.
 */
import { checkBool, checkInt, checkNumber, checkOptions, describe } from '../args.js';
import { rand, randint, randn, tensor, zeros } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { tidy } from '../memory.js';
import { concat } from '../ops.js';
import { Tensor } from '../tensor.js';
import { quadrature, type IntegrationMethod } from './approximation.js';
import {
  Attribution, Rule, checkKeys, column, expandExtra, expandTargets, prepare, prepareBaselines, rows, shaped,
  type AttributionOf, type BaseOptions, type Baselines, type Inputs, type Prepared,
} from './common.js';

const BASE_KEYS = ['target', 'additionalForwardArgs'] as const;

/** A batch size option: a whole number >= 1, or the default. */
function batchOption(v: unknown, dflt: number, what: string): number {
  return v === undefined ? dflt : checkInt(v, what, 1);
}

/** One standard deviation per input (a number for all, or an array). */
function stdevsOption(v: unknown, count: number, dflt: number, what: string): number[] {
  const list = v === undefined ? new Array<number>(count).fill(dflt) : Array.isArray(v) ? v : new Array<unknown>(count).fill(v);
  if (list.length !== count) throw new ArgumentError(`${what}: ${list.length} stdevs for ${count} inputs`);
  return list.map((s: unknown, j: number) => {
    checkNumber(s, `${what}: stdevs[${j}]`, { finite: true });
    if ((s as number) < 0) throw new ArgumentError(`${what}: stdevs must be >= 0, got ${s}`);
    return s as number;
  });
}

function seedOption(v: unknown, what: string): number | undefined {
  return v === undefined ? undefined : checkInt(v, `${what}: seed`, 0, Number.MAX_SAFE_INTEGER);
}

function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
/**
 * The seed of draw `index` of `stream` under the user's `seed` (integer-exact hashing: the same in
 * every runtime). Each sample draws with its own seed, so batching samples differently draws the
 * same numbers. Without a seed, draws come from the global stream, in sample order.
 */
export function subSeed(seed: number | undefined, stream: number, index: number): { seed: number } | undefined {
  if (seed === undefined) return undefined;
  const lo = seed >>> 0;
  const hi = Math.floor(seed / 0x1_0000_0000);
  const a = mix32((lo ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
  const b = mix32((hi ^ Math.imul(stream + 1, 0x85ebca77) ^ a) >>> 0);
  return { seed: (b & 0x1fffff) * 0x1_0000_0000 + a };
}

/** Adds `w * g[rows of example range]` into `acc[i0, i1)` in place (one fixed-order step of a sum). */
function accumulate(acc: Tensor, i0: number, i1: number, g: Tensor, g0: number, w: number | null): void {
  const view = rows(acc, i0, i1);
  const seg = rows(g, g0, g0 + (i1 - i0));
  view.assign(view.add(w === null ? seg : seg.mul(w)));
}

// ------------------------------------------------------------------------------------ Saliency

export interface SaliencyOptions extends BaseOptions {
  /** Absolute value of the gradient (default true, as Captum). */
  abs?: boolean;
}

/** Saliency (Simonyan et al.): the gradient of the target output with respect to the inputs (absolute by default). */
export class Saliency extends Attribution {
  /** Attributions of the `target` output to each input, shaped like the inputs (a Tensor, or an array for an array of inputs). */
  attribute<I extends Inputs>(inputs: I, opts?: SaliencyOptions): AttributionOf<I> {
    const o = checkKeys(opts, [...BASE_KEYS, 'abs'], 'Saliency.attribute()');
    const abs = checkBool(o.abs ?? true, 'Saliency: abs');
    const p = prepare(inputs, o, 'Saliency.attribute()');
    return tidy(() => shaped<I>(p, this.gradients(p.xs, p.targets, p.extra).map((g) => (abs ? g.abs() : g))));
  }
}

// ------------------------------------------------------------------------------ InputXGradient

/** Input × Gradient: the inputs multiplied elementwise by the target output's gradient. */
export class InputXGradient extends Attribution {
  /** Attributions `inputs ⊙ ∂F_target/∂inputs`, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: BaseOptions): AttributionOf<I> {
    const o = checkKeys(opts, BASE_KEYS, 'InputXGradient.attribute()');
    const p = prepare(inputs, o, 'InputXGradient.attribute()');
    return tidy(() => shaped<I>(p, this.gradients(p.xs, p.targets, p.extra).map((g, j) => g.mul(p.xs[j]))));
  }
}

// ------------------------------------------------------------------------- IntegratedGradients

export interface IntegratedGradientsOptions extends BaseOptions {
  /** The path's start (default 0): a number, a tensor per example or per input shape; one per input for tuples. */
  baselines?: Baselines;
  /** Integration points (default 50). */
  nSteps?: number;
  /** Integration rule (default 'gausslegendre'). */
  method?: IntegrationMethod;
  /** Rows per forward/backward pass (default: all batch × nSteps rows at once). Does not change the result. */
  internalBatchSize?: number;
  /** Also return delta = Σ attributions − (F(inputs) − F(baselines)) per example. */
  returnConvergenceDelta?: boolean;
}

/** Attributions with their convergence delta `[batch]`. */
export interface WithDelta<A> {
  /** The attributions, shaped like the inputs. */
  attributions: A;
  /** Per-example convergence gap `Σ attributions − (F(x) − F(baseline))`, shape `[batch]`. */
  delta: Tensor;
}

const IG_KEYS = [...BASE_KEYS, 'baselines', 'nSteps', 'method', 'internalBatchSize', 'returnConvergenceDelta'];

/**
 * Integrated Gradients (Sundararajan et al.): (x − baseline) ⊙ ∫₀¹ ∂F(baseline + α(x − baseline))/∂x dα,
 * the integral by `method` with `nSteps` points. Satisfies completeness: Σ attributions ≈
 * F(x) − F(baseline) (`returnConvergenceDelta` reports the gap).
 */
export class IntegratedGradients extends Attribution {
  /** Attributions shaped like the inputs, with the per-example convergence delta (`returnConvergenceDelta: true`). */
  attribute<I extends Inputs>(inputs: I, opts: IntegratedGradientsOptions & { returnConvergenceDelta: true }): WithDelta<AttributionOf<I>>;
  /** Attributions shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: IntegratedGradientsOptions & { returnConvergenceDelta?: false }): AttributionOf<I>;
  attribute<I extends Inputs>(inputs: I, opts?: IntegratedGradientsOptions): AttributionOf<I> | WithDelta<AttributionOf<I>> {
    const what = 'IntegratedGradients.attribute()';
    const o = checkKeys(opts, IG_KEYS, what);
    const p = prepare(inputs, o, what);
    const nSteps = o.nSteps === undefined ? 50 : checkInt(o.nSteps, `${what}: nSteps`, 1, 1_000_000);
    const { alphas, weights } = quadrature(o.method ?? 'gausslegendre', nSteps);
    const batch = batchOption(o.internalBatchSize, p.n * nSteps, `${what}: internalBatchSize`);
    const withDelta = checkBool(o.returnConvergenceDelta ?? false, `${what}: returnConvergenceDelta`);
    return tidy(() => {
      const bases = prepareBaselines(o.baselines, p, what);
      const diffs = p.xs.map((x, j) => x.sub(bases[j]));
      const acc = p.xs.map((x) => zeros(x.shape));
      const total = p.n * nSteps;
      // Row r is (step k = floor(r / n), example i = r % n), step-major as in Captum.
      for (let r0 = 0; r0 < total; r0 += batch) {
        const r1 = Math.min(total, r0 + batch);
        tidy(() => {
          const idx = Int32Array.from({ length: r1 - r0 }, (_, q) => (r0 + q) % p.n);
          const idxT = tensor(idx, [r1 - r0], 'int32');
          const points = p.xs.map((x, j) => {
            const al = column(Array.from(idx, (_, q) => alphas[Math.floor((r0 + q) / p.n)]), x.rank);
            return bases[j].indexSelect(0, idxT).add(diffs[j].indexSelect(0, idxT).mul(al));
          });
          const grads = this.gradients(points, expandTargets(p.targets, idx), expandExtra(p.extra, p.n, idxT));
          // Σ_k w_k g_k, added step by step: the same order whatever the batch split.
          for (let k = Math.floor(r0 / p.n); k * p.n < r1; k++) {
            const s0 = Math.max(r0, k * p.n);
            const s1 = Math.min(r1, (k + 1) * p.n);
            grads.forEach((g, j) => accumulate(acc[j], s0 - k * p.n, s1 - k * p.n, g, s0 - r0, weights[k]));
          }
        });
      }
      const attrs = acc.map((a, j) => a.mul(diffs[j]));
      if (!withDelta) return shaped<I>(p, attrs);
      const delta = tidy(() => {
        const end = this.outputs(p.xs, p.targets, p.extra, p.n, batch);
        const start = this.outputs(bases.map((b) => b.contiguous()), p.targets, p.extra, p.n, batch);
        const sums = attrs.map((a) => a.reshape([p.n, -1]).sum(1)).reduce((s, t) => s.add(t));
        return sums.sub(end.sub(start));
      });
      return { attributions: shaped<I>(p, attrs), delta };
    });
  }
}

// -------------------------------------------------------------------------------- GradientShap

export interface GradientShapOptions extends BaseOptions {
  /** The baseline distribution: a tensor `[m, ...]` per input (the same m for every input). */
  baselines: Tensor | readonly Tensor[];
  /** Samples per example (default 5). */
  nSamples?: number;
  /** Standard deviation of the Gaussian noise added to the inputs (default 0; one per input or a number). */
  stdevs?: number | readonly number[];
  /** Seed of the noise, baseline draws and path points (default: the global stream). */
  seed?: number;
  /** Rows per forward/backward pass (default: all batch × nSamples rows at once). Does not change the result. */
  internalBatchSize?: number;
}

/**
 * GradientSHAP (Lundberg and Lee; Captum's): expected gradients. For each of `nSamples` samples
 * per example: a baseline drawn from the distribution, the input plus Gaussian noise, a uniform
 * point α on the path; attribution = mean of ∂F(baseline + α(x̃ − baseline)) ⊙ (x̃ − baseline).
 */
export class GradientShap extends Attribution {
  override get baselinesPerExample(): boolean {
    return false;
  }

  /** GradientSHAP attributions, shaped like the inputs; `baselines` is a distribution (rows drawn per sample), not per example. */
  attribute<I extends Inputs>(inputs: I, opts: GradientShapOptions): AttributionOf<I> {
    const what = 'GradientShap.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'nSamples', 'stdevs', 'seed', 'internalBatchSize'], what);
    const p = prepare(inputs, o, what);
    const dist = this.#distribution(o.baselines, p, what);
    const m = dist[0].shape[0];
    const nSamples = o.nSamples === undefined ? 5 : checkInt(o.nSamples, `${what}: nSamples`, 1, 1_000_000);
    const stdevs = stdevsOption(o.stdevs, p.xs.length, 0, what);
    const seed = seedOption(o.seed, what);
    const batch = batchOption(o.internalBatchSize, p.n * nSamples, `${what}: internalBatchSize`);
    const perPass = Math.max(1, Math.floor(batch / p.n));
    return tidy(() => {
      const acc = p.xs.map((x) => zeros(x.shape));
      for (let s0 = 0; s0 < nSamples; s0 += perPass) {
        const s1 = Math.min(nSamples, s0 + perPass);
        tidy(() => {
          const noisy: Tensor[][] = p.xs.map(() => []);
          const starts: Tensor[][] = p.xs.map(() => []);
          const points: Tensor[][] = p.xs.map(() => []);
          // Draws in sample order, stream by stream, each sample with its own seed.
          for (let s = s0; s < s1; s++) {
            const alpha = rand([p.n], 0, 1, subSeed(seed, 0, s));
            const pick = randint([p.n], 0, m, subSeed(seed, 1, s));
            p.xs.forEach((x, j) => {
              const xn = stdevs[j] > 0 ? x.add(randn(x.shape, 0, stdevs[j], subSeed(seed, 2 + j, s))) : x;
              const b = dist[j].indexSelect(0, pick);
              const d = xn.sub(b);
              noisy[j].push(d);
              starts[j].push(b);
              points[j].push(b.add(d.mul(alpha.reshape([p.n, ...x.shape.slice(1).map(() => 1)]))));
            });
          }
          const idx = Int32Array.from({ length: (s1 - s0) * p.n }, (_, q) => q % p.n);
          const idxT = tensor(idx, [idx.length], 'int32');
          const grads = this.gradients(points.map((ps) => concat(ps, 0)), expandTargets(p.targets, idx), expandExtra(p.extra, p.n, idxT));
          for (let s = s0; s < s1; s++) {
            grads.forEach((g, j) => {
              const contrib = rows(g, (s - s0) * p.n, (s - s0 + 1) * p.n).mul(noisy[j][s - s0]);
              accumulate(acc[j], 0, p.n, contrib, 0, null);
            });
          }
        });
      }
      return shaped<I>(p, acc.map((a) => a.div(nSamples)));
    });
  }

  #distribution(b: unknown, p: Prepared, what: string): Tensor[] {
    const list = b instanceof Tensor ? [b] : Array.isArray(b) ? b : null;
    if (list === null) throw new ArgumentError(`${what}: baselines (the baseline distribution, a Tensor [m, ...] per input) is required, got ${describe(b)}`);
    if (list.length !== p.xs.length) throw new ArgumentError(`${what}: ${list.length} baseline distributions for ${p.xs.length} inputs`);
    return list.map((t: unknown, j: number) => {
      if (!(t instanceof Tensor)) throw new ArgumentError(`${what}: baselines[${j}] must be a Tensor, got ${describe(t)}`);
      if (t.dtype !== 'float32') throw new DTypeError(`${what}: baselines[${j}] is ${t.dtype}, the input float32`);
      const rest = p.xs[j].shape.slice(1);
      if (t.rank !== rest.length + 1 || t.shape.slice(1).join() !== rest.join() || t.shape[0] < 1) {
        throw new ShapeError(`${what}: baselines[${j}] has shape [${t.shape.join(', ')}]; a distribution of examples [m >= 1, ${rest.join(', ')}] is needed`);
      }
      if (t.shape[0] !== list[0].shape[0]) throw new ShapeError(`${what}: every input's baseline distribution needs the same number of baselines`);
      return t;
    });
  }
}

// --------------------------------------------------------------------------------- NoiseTunnel

/** How NoiseTunnel combines the noisy attributions: `'smoothgrad'` (mean), `'smoothgrad_sq'` (mean of squares) or `'vargrad'` (variance), Captum's names. */
export type NoiseTunnelType = 'smoothgrad' | 'smoothgrad_sq' | 'vargrad';

export interface NoiseTunnelOptions extends BaseOptions {
  /** How the noisy attributions combine (default 'smoothgrad': their mean). */
  ntType?: NoiseTunnelType;
  /** Noisy samples per example (default 5). */
  ntSamples?: number;
  /** Samples per call of the wrapped method (default: all). Does not change the result. */
  ntSamplesBatchSize?: number;
  /** Standard deviation of the Gaussian noise (default 1; one per input or a number). */
  stdevs?: number | readonly number[];
  /** Seed of the noise (default: the global stream). */
  seed?: number;
  /** Any further options go to the wrapped method (baselines, nSteps, abs...). */
  [option: string]: unknown;
}

/** An attribution method NoiseTunnel can wrap (any of this module's, or a user's with the same shape). */
export interface AttributionMethod {
  /** Computes attributions for `inputs` (shaped like them, optionally with a convergence delta). */
  attribute(inputs: Inputs, opts?: object): Tensor | Tensor[] | WithDelta<Tensor | Tensor[]>;
  /** Whether `baselines` rows pair with the examples (true when absent) or form a distribution (GradientShap: false). */
  readonly baselinesPerExample?: boolean;
}

const NT_TYPES: readonly NoiseTunnelType[] = ['smoothgrad', 'smoothgrad_sq', 'vargrad'];

/**
 * NoiseTunnel (Captum's): runs the wrapped method on `ntSamples` noisy copies of every example
 * (Gaussian noise of `stdevs`) and combines them: SmoothGrad (mean), SmoothGrad² (mean of squares)
 * or VarGrad (variance). Samples go to the wrapped method `ntSamplesBatchSize` at a time, as one
 * batch each; per-example options (target, per-example baselines, batch-first extra arguments) follow.
 */
export class NoiseTunnel {
  /** The wrapped attribution method. */
  readonly attributionMethod: AttributionMethod;

  constructor(method: AttributionMethod) {
    if (method === null || typeof method !== 'object' || typeof (method as { attribute?: unknown }).attribute !== 'function') {
      throw new ArgumentError(`NoiseTunnel needs an attribution method (such as new IntegratedGradients(model)), got ${describe(method)}`);
    }
    this.attributionMethod = method;
  }

  /** Noise-tunnelled attributions of the wrapped method, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: NoiseTunnelOptions): AttributionOf<I> {
    const what = 'NoiseTunnel.attribute()';
    const { ntType = 'smoothgrad', ntSamples, ntSamplesBatchSize, stdevs: sd, seed: sdd, target, additionalForwardArgs, ...inner } =
      checkOptions(opts, `${what} options`);
    if (!NT_TYPES.includes(ntType)) throw new ArgumentError(`${what}: ntType must be one of ${NT_TYPES.join(', ')}, got ${describe(ntType)}`);
    if (inner.returnConvergenceDelta) throw new ArgumentError(`${what}: returnConvergenceDelta is not supported through NoiseTunnel`);
    const p = prepare(inputs, { target, additionalForwardArgs }, what);
    const nSamples = ntSamples === undefined ? 5 : checkInt(ntSamples, `${what}: ntSamples`, 1, 1_000_000);
    const perCall = batchOption(ntSamplesBatchSize, nSamples, `${what}: ntSamplesBatchSize`);
    const stdevs = stdevsOption(sd, p.xs.length, 1, what);
    const seed = seedOption(sdd, what);
    const perExampleBaselines = this.attributionMethod.baselinesPerExample ?? true;
    return tidy(() => {
      const sum = p.xs.map((x) => zeros(x.shape));
      const sq = ntType === 'smoothgrad' ? [] : p.xs.map((x) => zeros(x.shape));
      for (let s0 = 0; s0 < nSamples; s0 += perCall) {
        const s1 = Math.min(nSamples, s0 + perCall);
        tidy(() => {
          const idx = Int32Array.from({ length: (s1 - s0) * p.n }, (_, q) => q % p.n);
          const idxT = tensor(idx, [idx.length], 'int32');
          const noisy = p.xs.map((x, j) => {
            const copies: Tensor[] = [];
            for (let s = s0; s < s1; s++) copies.push(stdevs[j] > 0 ? x.add(randn(x.shape, 0, stdevs[j], subSeed(seed, j, s))) : x);
            return copies.length === 1 ? copies[0] : concat(copies, 0);
          });
          const o: Record<string, unknown> = { ...inner };
          if (p.targets !== null) o.target = expandTargets(p.targets, idx);
          if (p.extra.length > 0) o.additionalForwardArgs = expandExtra(p.extra, p.n, idxT);
          if (perExampleBaselines && inner.baselines !== undefined) o.baselines = this.#expandBaselines(inner.baselines, p, idxT);
          const out = this.attributionMethod.attribute(p.tuple ? noisy : noisy[0], o);
          const attrs = out instanceof Tensor ? [out] : Array.isArray(out) ? out : null;
          if (attrs === null || attrs.length !== p.xs.length) throw new ArgumentError(`${what}: the wrapped method returned ${describe(out)}; it must return attributions shaped like the inputs`);
          for (let s = s0; s < s1; s++) {
            attrs.forEach((a, j) => {
              const part = rows(a, (s - s0) * p.n, (s - s0 + 1) * p.n);
              accumulate(sum[j], 0, p.n, part, 0, null);
              if (ntType !== 'smoothgrad') accumulate(sq[j], 0, p.n, part.square(), 0, null);
            });
          }
        });
      }
      const result = p.xs.map((_, j) => {
        if (ntType === 'smoothgrad') return sum[j].div(nSamples);
        if (ntType === 'smoothgrad_sq') return sq[j].div(nSamples);
        const mean = sum[j].div(nSamples);
        return sq[j].div(nSamples).sub(mean.square());
      });
      return shaped<I>(p, result);
    });
  }

  /** Per-example baseline tensors repeated for every sample; shared ones (numbers, one example) as they are. */
  #expandBaselines(b: unknown, p: Prepared, idxT: Tensor): unknown {
    const one = (v: unknown, j: number): unknown =>
      v instanceof Tensor && v.rank === p.xs[j].rank && v.shape[0] === p.n && p.n > 1 ? v.indexSelect(0, idxT) : v;
    return Array.isArray(b) ? b.map(one) : one(b, 0);
  }
}

// ------------------------------------------------------------------------------- GuidedBackprop

/**
 * Guided backpropagation (Springenberg et al.; Captum's `GuidedBackprop`): the gradient of the
 * target output, with every ReLU also passing back only positive gradients. Applies to every ReLU
 * the engine runs (modules, `x.relu()`, fused `activation: 'relu'`), not only to ReLU modules.
 */
export class GuidedBackprop extends Attribution {
  /** Guided-backprop attributions, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: BaseOptions): AttributionOf<I> {
    const o = checkKeys(opts, BASE_KEYS, 'GuidedBackprop.attribute()');
    const p = prepare(inputs, o, 'GuidedBackprop.attribute()');
    return tidy(() => shaped<I>(p, this.gradients(p.xs, p.targets, p.extra, Rule.Guided)));
  }
}

// ------------------------------------------------------------------------------------- DeepLift

export interface DeepLiftOptions extends BaseOptions {
  /** Reference inputs (default 0): a number, a tensor per example or per input shape; one per input for tuples. */
  baselines?: Baselines;
  /** Also return delta = Σ attributions − (F(inputs) − F(baselines)) per example (0 up to rounding: summation-to-delta). */
  returnConvergenceDelta?: boolean;
}

/**
 * DeepLift with the rescale rule (Shrikumar et al.; Captum's `DeepLift`): attributions
 * (x − baseline) ⊙ multipliers, where the backward pass runs on the inputs stacked over their
 * baselines and every nonlinearity passes back Δoutput / Δinput instead of its derivative:
 * ReLU, sigmoid, tanh, leaky ReLU, ELU, GELU, SiLU, softplus elementwise, max pooling by Captum's
 * max-pool rule (the true gradient where an input equals its baseline). Linear parts (linear,
 * conv, average pooling, batch norm in eval mode) keep their gradient. Other nonlinearities
 * (softmax, layer norm, products of activations) use their gradient, as in Captum. The
 * attributions sum to F(x) − F(baseline) (`returnConvergenceDelta` reports the gap).
 */
export class DeepLift extends Attribution {
  /** DeepLift attributions shaped like the inputs, with the per-example convergence delta (`returnConvergenceDelta: true`). */
  attribute<I extends Inputs>(inputs: I, opts: DeepLiftOptions & { returnConvergenceDelta: true }): WithDelta<AttributionOf<I>>;
  /** DeepLift attributions, shaped like the inputs. */
  attribute<I extends Inputs>(inputs: I, opts?: DeepLiftOptions & { returnConvergenceDelta?: false }): AttributionOf<I>;
  attribute<I extends Inputs>(inputs: I, opts?: DeepLiftOptions): AttributionOf<I> | WithDelta<AttributionOf<I>> {
    const what = 'DeepLift.attribute()';
    const o = checkKeys(opts, [...BASE_KEYS, 'baselines', 'returnConvergenceDelta'], what);
    const p = prepare(inputs, o, what);
    const withDelta = checkBool(o.returnConvergenceDelta ?? false, `${what}: returnConvergenceDelta`);
    return tidy(() => {
      const bases = prepareBaselines(o.baselines, p, what);
      const grads = this.gradients(p.xs, p.targets, p.extra, Rule.Rescale, bases);
      const attrs = grads.map((g, j) => g.mul(p.xs[j].sub(bases[j])));
      if (!withDelta) return shaped<I>(p, attrs);
      const delta = tidy(() => {
        const end = this.outputs(p.xs, p.targets, p.extra, p.n, p.n);
        const start = this.outputs(bases.map((b) => b.contiguous()), p.targets, p.extra, p.n, p.n);
        return attrs.map((a) => a.reshape([p.n, -1]).sum(1)).reduce((s, t) => s.add(t)).sub(end.sub(start));
      });
      return { attributions: shaped<I>(p, attrs), delta };
    });
  }
}
