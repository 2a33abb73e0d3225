/**
 * DP-SGD through `fit`: Opacus's `PrivacyEngine` (names in camelCase). `makePrivate` returns the
 * Poisson-sampled data, a `TrainStep` that clips per-example gradients, adds N(0, σ²C²) to their sum,
 * scales by the expected batch size and steps the user's optimizer, and a `PrivacyCallback` that puts
 * ε(δ) in each epoch's logs. The accountant takes one step of (σ, q) per optimizer step.
 */
import { ArgumentError } from '../errors.js';
import { checkBool, checkInt, checkOptions, describe } from '../args.js';
import { concat } from '../ops.js';
import { scalar, zeros } from '../creation.js';
import { Dataset, type Batch } from '../data.js';
import { assertModule, type Module } from '../nn/module.js';
import { Optimizer } from '../optim/optimizers.js';
import { Callback, type CallbackState, type Logs } from '../train/callbacks.js';
import { clipGradNorm, clipGradValue } from '../optim/optimizers.js';
import type { StepInput, StepOutput, TrainStep } from '../train/step.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { clippedGradientSum, UnsupportedLayerError, type Clipping, type LossReduction } from './grad-sample.js';
import { createAccountant, getNoiseMultiplier, type Accountant, type AccountantState, type Mechanism } from './accountants/index.js';
import { validate } from './validate.js';
import { addNoiseAndDivide } from './noise.js';
import { MAX_SAMPLING_SEED, poissonDataset } from './sampling.js';

/** The accountant a `PrivacyEngine` keeps: 'prv' (Opacus's default), 'rdp' or 'gdp'. */
export type AccountantName = Mechanism;

function makeAccountant(name: AccountantName): Accountant {
  if (name !== 'prv' && name !== 'rdp' && name !== 'gdp') throw new ArgumentError(`accountant must be 'prv', 'rdp' or 'gdp', got ${describe(name)}`);
  return createAccountant(name);
}

/** Options of {@link PrivacyEngine}. */
export interface PrivacyEngineOptions {
  /** How ε is computed: 'prv' (default, Opacus's too), 'rdp' or 'gdp'. */
  accountant?: AccountantName;
  /**
   * Draw the noise and the Poisson memberships from the platform CSPRNG (Web Crypto) instead of the
   * seeded engine stream. Recommended for deployment: seeded noise is reproducible, hence known to
   * anyone who knows the seed (README "Differential privacy" → "Noise").
   */
  secureMode?: boolean;
}

/** Options of `PrivacyEngine.makePrivate` (Opacus's `make_private`). */
export interface MakePrivateOptions {
  /** The model to train privately (per-sample gradients are computed for its layers). */
  model: Module;
  /** The optimizer whose steps become DP-SGD steps. */
  optimizer: Optimizer;
  /** The training examples and targets (all of them: the sample rate is batchSize / N). */
  data: [Tensor, Tensor];
  /** Expected (Poisson) or fixed batch size; q = batchSize / N. */
  batchSize: number;
  /** σ: the noise std relative to the clipping norm C. */
  noiseMultiplier: number;
  /** C: one norm (flat, ghost) or one per trainable parameter in `namedParameters()` order (perLayer). */
  maxGradNorm: number | number[];
  /** Poisson sampling (default true); false: shuffled fixed-size batches (not what the accountants analyse). */
  poissonSampling?: boolean;
  /**
   * 'ghost' (default: flat clipping from per-example norms, without materialising per-example
   * gradients — as fast or faster than 'flat' in bench/workloads/dp.ts and a fraction of its memory),
   * 'flat' (the same clipping from materialised per-example gradients) or 'perLayer'.
   */
  clipping?: Clipping;
  /** Split each logical batch into physical chunks of at most this many examples (bounded memory). */
  maxPhysicalBatchSize?: number;
  /** How the compiled loss reduces over the batch (Opacus's loss_reduction): 'mean' (default) or 'sum'. */
  lossReduction?: LossReduction;
  /** Seed of the Poisson sampling stream (ignored in secureMode). Default 0. */
  seed?: number;
  /** δ at which the callback logs ε each epoch and the budget is checked. Default 1e-5. */
  delta?: number;
  /** Stop training before the step that would take ε(δ) above this budget. */
  epsilonBudget?: number;
}

/** Options of `PrivacyEngine.makePrivateWithEpsilon`: like {@link MakePrivateOptions} but σ is solved from a target (ε, δ) budget. */
export interface MakePrivateWithEpsilonOptions extends Omit<MakePrivateOptions, 'noiseMultiplier' | 'delta'> {
  /** Privacy budget ε to reach after `epochs` epochs (> 0). */
  targetEpsilon: number;
  /** δ of the budget, in (0, 1); usually below 1/N. */
  targetDelta: number;
  /** Epochs the run will train (σ is solved so that ε(targetDelta) ≤ targetEpsilon after them). */
  epochs: number;
}

/** What `makePrivate` returns: pass these to `compile` and `fit(data, { trainStep, callbacks: [callback] })`. */
export interface PrivateTraining {
  /** The model, unchanged (pass it to `compile`/`fit`). */
  model: Module;
  /** The optimizer, unchanged (the DP step clips and noises before calling its `step()`). */
  optimizer: Optimizer;
  /** Poisson-sampled batches of the training data. */
  data: Dataset;
  /** The DP-SGD step for `fit`. */
  trainStep: TrainStep;
  /** Logs `epsilon` each epoch and ends the run when the budget is spent. */
  callback: PrivacyCallback;
  /** σ: noise standard deviation relative to the clipping norm. */
  noiseMultiplier: number;
  /** Poisson sampling probability q = batchSize / N. */
  sampleRate: number;
  /** Optimizer steps per epoch. */
  batchesPerEpoch: number;
}

interface Checked {
  model: Module;
  optimizer: Optimizer;
  x: Tensor;
  y: Tensor;
  n: number;
  batchSize: number;
  maxGradNorm: number | number[];
  noiseNorm: number;
  poisson: boolean;
  clipping: Clipping;
  physical: number;
  lossReduction: LossReduction;
  seed: number;
  delta: number;
  budget: number | null;
}

const CLIPPINGS: Clipping[] = ['flat', 'perLayer', 'ghost'];

/** Opacus's `PrivacyEngine`: one accountant, shared by every model made private with it. */
export class PrivacyEngine {
  /** The accountant that computes ε: `'prv'`, `'rdp'` or `'gdp'`. */
  readonly accountantName: AccountantName;
  /** True when noise and sampling come from the platform CSPRNG (not reproducible). */
  readonly secureMode: boolean;
  /** The privacy accountant: one step per optimizer step. */
  readonly accountant: Accountant;
  /** True once a budget stopped training (no step past it was taken). */
  budgetExhausted = false;
  #budgetStepsLeft: number | null = null;

  constructor(o: PrivacyEngineOptions = {}) {
    o = checkOptions(o, 'PrivacyEngine options');
    this.accountantName = o.accountant === undefined ? 'prv' : o.accountant;
    this.accountant = makeAccountant(this.accountantName);
    this.secureMode = o.secureMode === undefined ? false : checkBool(o.secureMode, 'PrivacyEngine secureMode');
  }

  /** ε spent so far at δ (0 before the first step). */
  getEpsilon(delta: number): number {
    if (!(typeof delta === 'number' && delta > 0 && delta < 1)) throw new ArgumentError(`delta must be a number in (0, 1), got ${describe(delta)}`);
    return this.accountant.getEpsilon(delta);
  }

  /** Makes a model's training differentially private with noise multiplier σ and clipping norm C. */
  makePrivate(o: MakePrivateOptions): PrivateTraining {
    const c = checkMakePrivate(o, 'makePrivate');
    if (!(typeof o.noiseMultiplier === 'number' && o.noiseMultiplier >= 0 && Number.isFinite(o.noiseMultiplier))) {
      throw new ArgumentError(`makePrivate: noiseMultiplier must be a finite number >= 0, got ${describe(o.noiseMultiplier)}`);
    }
    return this.#build(c, o.noiseMultiplier);
  }

  /** `makePrivate` with σ solved (the accountant's `getNoiseMultiplier`) so that `epochs` of training spend at most `targetEpsilon` at `targetDelta`; that ε is also the budget. */
  makePrivateWithEpsilon(o: MakePrivateWithEpsilonOptions): PrivateTraining {
    o = checkOptions(o, 'makePrivateWithEpsilon options');
    const eps = o.targetEpsilon;
    if (!(typeof eps === 'number' && eps > 0 && Number.isFinite(eps))) throw new ArgumentError(`makePrivateWithEpsilon: targetEpsilon must be a finite number > 0, got ${describe(eps)}`);
    const epochs = checkInt(o.epochs, 'makePrivateWithEpsilon: epochs', 1);
    const d = o.targetDelta;
    if (!(typeof d === 'number' && d > 0 && d < 1)) throw new ArgumentError(`makePrivateWithEpsilon: targetDelta must be a number in (0, 1), got ${describe(d)}`);
    const c = checkMakePrivate({ ...o, noiseMultiplier: 1, delta: d, epsilonBudget: o.epsilonBudget === undefined ? eps : o.epsilonBudget }, 'makePrivateWithEpsilon');
    const q = c.batchSize / c.n;
    const sigma = getNoiseMultiplier({ targetEpsilon: eps, targetDelta: c.delta, sampleRate: q, steps: epochs * stepsPerEpoch(c), accountant: this.accountantName });
    return this.#build(c, sigma);
  }

  /** The accountant's state, for checkpoints (`PrivacyCallback` saves it with fit's training state). */
  stateDict(): AccountantState {
    return this.accountant.stateDict();
  }
  /** Restores `stateDict()`'s output (an ArgumentError for a malformed state or another mechanism's). */
  loadStateDict(s: AccountantState): void {
    this.accountant.loadStateDict(s as AccountantState);
    this.#budgetStepsLeft = null;
    this.budgetExhausted = false;
  }

  #build(c: Checked, sigma: number): PrivateTraining {
    const q = c.batchSize / c.n;
    const perEpoch = stepsPerEpoch(c);
    const stopBefore = (): boolean => {
      if (c.budget === null || this.budgetExhausted) return this.budgetExhausted;
      // Counted once (the accountant's exact maxSteps), then down by one per step.
      this.#budgetStepsLeft ??= this.accountant.maxSteps({ noiseMultiplier: sigma, sampleRate: q }, { epsilon: c.budget, delta: c.delta });
      if (this.#budgetStepsLeft <= 0) this.budgetExhausted = true;
      return this.budgetExhausted;
    };
    const data = c.poisson
      ? poissonDataset(c.x, c.y, { sampleRate: q, batchesPerEpoch: perEpoch, seed: c.seed, secure: this.secureMode }, { stopBefore })
      : stoppable(Dataset.fromTensors(c.x, c.y, { batchSize: c.batchSize, shuffle: true, seed: c.seed }), stopBefore);
    const trainStep = dpStep({
      sigma, c, secure: this.secureMode,
      afterStep: () => {
        this.accountant.step({ noiseMultiplier: sigma, sampleRate: q }, 1);
        if (this.#budgetStepsLeft !== null) this.#budgetStepsLeft--;
      },
    });
    return {
      model: c.model, optimizer: c.optimizer, data, trainStep, callback: new PrivacyCallback(this, { delta: c.delta }),
      noiseMultiplier: sigma, sampleRate: q, batchesPerEpoch: perEpoch,
    };
  }
}

function stepsPerEpoch(c: Checked): number {
  return c.poisson ? Math.max(1, Math.round(c.n / c.batchSize)) : Math.ceil(c.n / c.batchSize);
}

/** A dataset whose epochs end early once `stopBefore()` says so. */
function stoppable(base: Dataset, stopBefore: () => boolean): Dataset {
  return Dataset.fromGenerator((epoch: number) => ({
    async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
      for await (const b of base.batches(epoch)) {
        if (stopBefore()) {
          b.x.dispose();
          b.y?.dispose();
          return;
        }
        yield b;
      }
    },
  }), base.size);
}

function checkMakePrivate(o: MakePrivateOptions, who: string): Checked {
  o = checkOptions(o, `${who} options`);
  assertModule(o.model, `${who}: model`);
  if (!(o.optimizer instanceof Optimizer)) throw new ArgumentError(`${who}: optimizer must be an eg.optim Optimizer, got ${describe(o.optimizer)}`);
  const own = new Set(o.model.trainableParameters());
  if (own.size === 0) throw new ArgumentError(`${who}: the model has no trainable parameters`);
  if (!o.optimizer.groups.some((g) => g.params.some((p) => own.has(p)))) throw new ArgumentError(`${who}: the optimizer holds none of the model's trainable parameters`);
  if (!Array.isArray(o.data) || o.data.length !== 2) throw new ArgumentError(`${who}: data must be [x, y] (two Tensors), got ${describe(o.data)}`);
  const [x, y] = o.data;
  assertTensor(x, `${who}: data[0] (x) must be a Tensor`);
  assertTensor(y, `${who}: data[1] (y) must be a Tensor`);
  if (x.rank < 1 || y.rank < 1 || x.shape[0] !== y.shape[0]) throw new ArgumentError(`${who}: x [${x.shape.join(', ')}] and y [${y.shape.join(', ')}] need the same number of examples`);
  const n = x.shape[0];
  if (n < 1) throw new ArgumentError(`${who}: data has no examples`);
  const batchSize = checkInt(o.batchSize, `${who}: batchSize`, 1);
  if (batchSize > n) throw new ArgumentError(`${who}: batchSize ${batchSize} exceeds the ${n} examples`);
  const clipping = o.clipping === undefined ? 'ghost' : o.clipping;
  if (!CLIPPINGS.includes(clipping)) throw new ArgumentError(`${who}: clipping must be 'flat', 'perLayer' or 'ghost', got ${describe(clipping)}`);
  const nParams = own.size;
  const okNorm = (v: unknown): boolean => typeof v === 'number' && v > 0 && Number.isFinite(v);
  let noiseNorm: number;
  if (clipping === 'perLayer') {
    const m = o.maxGradNorm;
    if (!(Array.isArray(m) && m.length === nParams && m.every(okNorm))) {
      throw new ArgumentError(`${who}: perLayer clipping needs maxGradNorm as ${nParams} positive numbers (one per trainable parameter), got ${describe(m)}`);
    }
    // Opacus: the per-layer bounds compose into one flat bound ‖(C_1..C_k)‖₂, which the noise is scaled to.
    noiseNorm = Math.hypot(...m);
  } else {
    if (!okNorm(o.maxGradNorm)) throw new ArgumentError(`${who}: maxGradNorm must be a finite number > 0 with ${clipping} clipping, got ${describe(o.maxGradNorm)}`);
    noiseNorm = o.maxGradNorm as number;
  }
  const poisson = o.poissonSampling === undefined ? true : checkBool(o.poissonSampling, `${who}: poissonSampling`);
  const physical = o.maxPhysicalBatchSize === undefined ? Infinity : checkInt(o.maxPhysicalBatchSize, `${who}: maxPhysicalBatchSize`, 1);
  const lossReduction = o.lossReduction === undefined ? 'mean' : o.lossReduction;
  if (lossReduction !== 'mean' && lossReduction !== 'sum') throw new ArgumentError(`${who}: lossReduction must be 'mean' or 'sum', got ${describe(lossReduction)}`);
  const seed = o.seed === undefined ? 0 : o.seed;
  if (!Number.isInteger(seed) || seed < 0 || seed >= MAX_SAMPLING_SEED) throw new ArgumentError(`${who}: seed must be an integer in [0, ${MAX_SAMPLING_SEED}), got ${describe(seed)}`);
  const delta = o.delta === undefined ? 1e-5 : o.delta;
  if (!(typeof delta === 'number' && delta > 0 && delta < 1)) throw new ArgumentError(`${who}: delta must be a number in (0, 1), got ${describe(delta)}`);
  const budget = o.epsilonBudget === undefined ? null : o.epsilonBudget;
  if (o.epsilonBudget !== undefined && !(typeof budget === 'number' && budget > 0 && Number.isFinite(budget))) throw new ArgumentError(`${who}: epsilonBudget must be a finite number > 0, got ${describe(budget)}`);
  const problems = validate(o.model);
  if (problems.length > 0) {
    const [first, ...rest] = problems;
    const more = rest.length ? `; and ${rest.map((p) => `${p.path} (${p.layer})`).join(', ')}` : '';
    throw new UnsupportedLayerError(first.path, first.layer, `${who} cannot train this model with DP-SGD: ${first.reason}${more}`);
  }
  return { model: o.model, optimizer: o.optimizer, x, y, n, batchSize, maxGradNorm: o.maxGradNorm, noiseNorm, poisson, clipping, physical, lossReduction, seed, delta, budget };
}

/**
 * The DP-SGD step: Σ_i clip_C(g_i) over the batch (in physical chunks), + N(0, σ²C²), divided by the
 * expected batch size (loss reduction 'mean'), + the model's (data-independent) regularization
 * gradient; then compile's gradient clipping if any (post-processing) and the optimizer's step.
 * An empty batch is a noise-only step.
 */
function dpStep(o: { sigma: number; c: Checked; secure: boolean; afterStep: () => void }): TrainStep {
  const { c, sigma } = o;
  return (s: StepInput): StepOutput => {
    const n = s.x.shape[0];
    const params = s.model.trainableParameters();
    const sums: (Tensor | null)[] = params.map(() => null);
    const preds: Tensor[] = [];
    let loss: Tensor = scalar(0);
    for (let start = 0; start < n; start += c.physical) {
      const end = Math.min(n, start + c.physical);
      const whole = start === 0 && end === n;
      const xc = whole ? s.x : s.x.slice([start, ...s.x.shape.slice(1).map(() => 0)], [end, ...s.x.shape.slice(1)]);
      const yc = whole ? s.y : s.y.slice([start, ...s.y.shape.slice(1).map(() => 0)], [end, ...s.y.shape.slice(1)]);
      const r = clippedGradientSum(s.model, s.loss, xc, yc, { maxGradNorm: c.maxGradNorm, clipping: c.clipping, lossReduction: c.lossReduction });
      params.forEach((p, k) => {
        const g = p.grad;
        if (!g) return;
        const prev = sums[k];
        sums[k] = prev ? prev.add(g) : whole ? g : g.clone(); // one chunk: read the gradient in place
        prev?.dispose(); // one running sum per parameter: memory stays that of one chunk
      });
      preds.push(r.pred);
      // The logged loss: a 'mean' loss weighted by chunk size, a 'sum' loss summed.
      loss = loss.add(c.lossReduction === 'mean' ? r.loss.mul((end - start) / n) : r.loss);
    }
    const reg = s.model.regularizationLoss();
    const regGrads: (Tensor | null)[] = params.map(() => null);
    if (reg) {
      s.optimizer.zeroGrad();
      reg.backward();
      params.forEach((p, k) => (regGrads[k] = p.grad?.clone() ?? null));
    }
    const std = sigma * c.noiseNorm;
    params.forEach((p, k) => {
      // One engine pass per parameter: (Σ clipped + noise) / B for a 'mean' loss, + noise for 'sum'.
      const sum = sums[k] ?? zeros(p.shape);
      let g = addNoiseAndDivide(sum, std, c.lossReduction === 'mean' ? c.batchSize : 1, o.secure);
      if (regGrads[k]) g = g.add(regGrads[k]!);
      p.grad = g;
    });
    if (s.clipGradValue !== undefined) clipGradValue(params, s.clipGradValue);
    if (s.clipGradNorm !== undefined) clipGradNorm(params, s.clipGradNorm);
    s.optimizer.step();
    o.afterStep();
    const pred = preds.length === 0 ? zeros([0]) : preds.length === 1 ? preds[0] : concat(preds, 0);
    return { loss, pred };
  };
}

/**
 * Puts `epsilon` (ε spent at δ) into each epoch's logs — so the progress line and the history show
 * it — and stops `fit` once the engine's budget is spent. Its checkpoint state is the accountant's,
 * so `fit({ resumeFrom })` continues the privacy accounting too.
 */
export class PrivacyCallback extends Callback {
  /** δ at which ε is reported. */
  readonly delta: number;
  /**
   * @param engine - The engine whose accountant is read.
   * @param o - `{ delta }`: δ in (0, 1) at which ε is logged.
   * @throws ArgumentError if `engine` is not a PrivacyEngine or δ is out of range.
   */
  constructor(readonly engine: PrivacyEngine, o: { delta: number }) {
    super();
    if (!(engine instanceof PrivacyEngine)) throw new ArgumentError(`PrivacyCallback needs a PrivacyEngine, got ${describe(engine)}`);
    o = checkOptions(o, 'PrivacyCallback options');
    if (!(typeof o.delta === 'number' && o.delta > 0 && o.delta < 1)) throw new ArgumentError(`PrivacyCallback: delta must be a number in (0, 1), got ${describe(o.delta)}`);
    this.delta = o.delta;
  }
  override onEpochEnd(_epoch: number, logs: Logs): void {
    logs.epsilon = this.engine.getEpsilon(this.delta);
    if (this.engine.budgetExhausted) this.ctx.stopTraining = true;
  }
  override stateDict(): CallbackState {
    return { values: { accountant: this.engine.stateDict(), budgetExhausted: this.engine.budgetExhausted } };
  }
  override loadStateDict(s: CallbackState): void {
    this.engine.loadStateDict(s.values.accountant as AccountantState);
    this.engine.budgetExhausted = s.values.budgetExhausted === true;
  }
}
