/**
 * Adversarial training through `fit`: `adversarialStep(opts)` is a `TrainStep` that replaces each
 * batch (or a fraction of it) by adversarial examples made against the current model, then
 * optimises on them. PGD-AT (Madry et al. 2018), fast FGSM with random start (Wong et al. 2020)
 * and TRADES (Zhang et al. 2019), with ε warm-up. The examples are made with `eg.attacks` on the
 * model in eval mode and with its parameters frozen, so the attack neither updates batch-norm
 * statistics nor leaves gradients on the parameters.
 */
import { checkBool, checkFunction, checkInt, checkNumber, checkObject, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { randn } from '../creation.js';
import { ArgumentError } from '../errors.js';
import { klDivergence, sparseCategoricalCrossEntropy } from '../losses.js';
import { tidy } from '../memory.js';
import { Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { clipGradNorm, clipGradValue } from '../optim/optimizers.js';
import { Tensor } from '../tensor.js';
import { standardStep, type StepInput, type StepOutput, type TrainStep } from '../train/step.js';
import { checkKeys, rows, type Target } from '../explain/common.js';
import { subSeed } from '../explain/gradient.js';
import {
  Attack, nonNegative, perExample, perExampleNorm, positive, sign,
  type AttackResult, type Batch, type ClipValues, type NormKind,
} from '../attacks/common.js';
import { PGD, type PGDOptions } from '../attacks/gradient.js';

/** How the examples are made: PGD-AT, fast FGSM with random start, or TRADES. */
export type AdversarialMethod = 'pgd' | 'fgsm' | 'trades';

/**
 * The budget ε at each step: constant, a linear ramp from 0 to `eps` over `warmupEpochs`, or a
 * function of (0-based epoch, global step) returning the step's ε.
 */
export type EpsSchedule = 'constant' | 'linear' | ((epoch: number, step: number) => number);

/** Options of `adversarialStep`. */
export interface AdversarialStepOptions {
  /** `'pgd'` (default), `'fgsm'` (one step from a random start) or `'trades'`. */
  method?: AdversarialMethod;
  /** The budget: the radius of the ball around each example (required). */
  eps: number;
  /** `'linf'` (default) or `'l2'`. */
  norm?: NormKind;
  /** Attack steps for `'pgd'` and `'trades'` (default 10; `'fgsm'` takes one). */
  steps?: number;
  /**
   * Step size at full ε (default: 2.5·eps/steps for PGD and TRADES as Madry et al.; 1.25·eps for
   * FGSM with a random start as Wong et al., eps without). During warm-up it shrinks in proportion
   * to the scheduled ε.
   */
  stepSize?: number;
  /** Start PGD or FGSM at a uniformly random point of the ε-ball (default true). */
  randomStart?: boolean;
  /** TRADES: weight of the robust term β·KL(f(x)‖f(x')) (default 6, the paper's 1/λ). */
  beta?: number;
  /** ε over training (default `'linear'` when `warmupEpochs` is given, `'constant'` otherwise). */
  epsSchedule?: EpsSchedule;
  /** Epochs (fractions allowed) over which `'linear'` ramps ε up to `eps` (default 1). */
  warmupEpochs?: number;
  /**
   * Fraction of each batch replaced by its adversarial version (default 1: all adversarial; 0.5:
   * the first half of each shuffled batch). PGD and FGSM only: TRADES weighs its clean and robust
   * terms with `beta`.
   */
  mixRatio?: number;
  /** The valid input range (default `{ min: 0, max: 1 }`); `null` for unbounded inputs. */
  clipValues?: ClipValues | null;
  /** Seed of the random starts (step s draws from a stream derived from (seed, s)); default: the engine's global stream. */
  seed?: number;
  /**
   * The step that optimises on the (mixed) adversarial batch (default `standardStep`), e.g. the
   * privacy engine's DP-SGD step. PGD and FGSM only: TRADES optimises its own loss.
   */
  inner?: TrainStep;
}

/** The `TrainStep` `adversarialStep` returns, with its ε schedule. */
export interface AdversarialStep extends TrainStep {
  /** The ε used at 0-based `epoch` and global `step` (`batchesPerEpoch` null: per epoch). */
  epsAt(epoch: number, step: number, batchesPerEpoch: number | null): number;
}

const KEYS = ['method', 'eps', 'norm', 'steps', 'stepSize', 'randomStart', 'beta', 'epsSchedule', 'warmupEpochs', 'mixRatio', 'clipValues', 'seed', 'inner'];
const WHAT = 'adversarialStep';

/** The options checked, with their defaults. */
interface Config {
  method: AdversarialMethod;
  eps: number;
  norm: NormKind;
  steps: number;
  stepSize: number;
  randomStart: boolean;
  beta: number;
  schedule: EpsSchedule;
  warmupEpochs: number;
  mixRatio: number;
  clipValues: ClipValues | null | undefined;
  seed: number | undefined;
  inner: TrainStep;
}

function onlyFor(o: AdversarialStepOptions, key: keyof AdversarialStepOptions, methods: AdversarialMethod[], why: string): void {
  const m = o.method ?? 'pgd';
  if (o[key] !== undefined && !methods.includes(m)) throw new ArgumentError(`${WHAT}: ${key} does not apply to method '${m}' (${why})`);
}

function configure(opts: AdversarialStepOptions): Config {
  const o = checkKeys(opts, KEYS, WHAT);
  const method = o.method ?? 'pgd';
  if (method !== 'pgd' && method !== 'fgsm' && method !== 'trades') throw new ArgumentError(`${WHAT}: method must be 'pgd', 'fgsm' or 'trades', got ${describe(method)}`);
  const norm = o.norm ?? 'linf';
  if (norm !== 'linf' && norm !== 'l2') throw new ArgumentError(`${WHAT}: norm must be 'linf' or 'l2', got ${describe(norm)}`);
  if (o.eps === undefined) throw new ArgumentError(`${WHAT}: eps is required (the radius of the ball the attack searches)`);
  const eps = positive(o.eps, `${WHAT}: eps`);
  onlyFor(o, 'steps', ['pgd', 'trades'], 'FGSM takes one step');
  onlyFor(o, 'randomStart', ['pgd', 'fgsm'], 'TRADES starts at x + 0.001·N(0, 1)');
  onlyFor(o, 'beta', ['trades'], 'beta weighs TRADES\'s robust term');
  onlyFor(o, 'mixRatio', ['pgd', 'fgsm'], 'TRADES weighs its clean and robust terms with beta');
  if (method === 'trades' && o.inner !== undefined) {
    throw new ArgumentError(`${WHAT}: TRADES cannot take an inner step: it optimises its own loss CE(f(x), y) + β·KL(f(x)‖f(x')) over both forwards, not the compiled loss an inner step (such as DP-SGD's) optimises; use method 'pgd' or 'fgsm' with inner`);
  }
  const steps = method === 'fgsm' ? 1 : checkInt(o.steps ?? 10, `${WHAT}: steps`, 1, 1_000_000);
  const randomStart = checkBool(o.randomStart ?? true, `${WHAT}: randomStart`);
  const defaultStep = method === 'fgsm' ? (randomStart ? 1.25 * eps : eps) : (2.5 * eps) / steps;
  const stepSize = o.stepSize === undefined ? defaultStep : positive(o.stepSize, `${WHAT}: stepSize`);
  const beta = nonNegative(o.beta ?? 6, `${WHAT}: beta`);
  const schedule = o.epsSchedule ?? (o.warmupEpochs !== undefined ? 'linear' : 'constant');
  if (typeof schedule !== 'function' && schedule !== 'constant' && schedule !== 'linear') {
    throw new ArgumentError(`${WHAT}: epsSchedule must be 'constant', 'linear' or a function (epoch, step) => eps, got ${describe(schedule)}`);
  }
  if (o.warmupEpochs !== undefined && schedule !== 'linear') throw new ArgumentError(`${WHAT}: warmupEpochs needs epsSchedule 'linear'`);
  const warmupEpochs = positive(o.warmupEpochs ?? 1, `${WHAT}: warmupEpochs`);
  const mixRatio = checkNumber(o.mixRatio ?? 1, `${WHAT}: mixRatio`);
  if (!(mixRatio >= 0 && mixRatio <= 1)) throw new ArgumentError(`${WHAT}: mixRatio must be in [0, 1] (the fraction of each batch made adversarial), got ${mixRatio}`);
  if (o.clipValues !== undefined && o.clipValues !== null) checkObject(o.clipValues, `${WHAT}: clipValues`, 'an object { min, max } or null');
  const seed = o.seed === undefined ? undefined : checkInt(o.seed, `${WHAT}: seed`, 0, Number.MAX_SAFE_INTEGER);
  const inner = o.inner === undefined ? standardStep : checkFunction<TrainStep>(o.inner, `${WHAT}: inner`);
  const cfg: Config = { method, eps, norm, steps, stepSize, randomStart, beta, schedule, warmupEpochs, mixRatio, clipValues: o.clipValues, seed, inner };
  // The attack checks clipValues itself; building one here reports a bad range now, not at the first batch.
  new PGD((t: Tensor) => t, attackOptions(cfg, eps, undefined));
  return cfg;
}

/** The ε of the step at (epoch, global step). */
function epsAt(c: Config, epoch: number, step: number, batchesPerEpoch: number | null): number {
  if (typeof c.schedule === 'function') {
    const e = c.schedule(epoch, step);
    if (typeof e !== 'number' || !Number.isFinite(e) || e < 0) throw new ArgumentError(`${WHAT}: epsSchedule(${epoch}, ${step}) returned ${describe(e)}; it must return a finite eps >= 0`);
    return e;
  }
  if (c.schedule === 'constant') return c.eps;
  // Epochs done at the end of this batch: the ramp reaches eps after warmupEpochs.
  const t = batchesPerEpoch ? epoch + ((step % batchesPerEpoch) + 1) / batchesPerEpoch : epoch + 1;
  return c.eps * Math.min(1, t / c.warmupEpochs);
}

/** PGD's options at budget `e` (FGSM with random start is PGD with one step of 1.25ε). */
function attackOptions(c: Config, e: number, seed: number | undefined): PGDOptions {
  return {
    norm: c.norm, eps: e, stepSize: (c.stepSize * e) / c.eps, steps: c.steps, randomStart: c.randomStart, seed,
    ...(c.clipValues === undefined ? {} : { clipValues: c.clipValues }),
  };
}

/**
 * PGD for training: the adversarial batch only. Training never reads `success` or `norm`, so the
 * extra forward and the read-back `result` spends on them are skipped.
 */
class TrainingPGD extends PGD {
  protected override result(_b: Batch, adv: Tensor): AttackResult {
    return { adversarial: adv, success: [], norm: new Float32Array(0) };
  }
}

/**
 * TRADES's inner maximisation: ascend KL(f(x)‖f(x')) from x' = x + 0.001·N(0, 1) (the KL's
 * gradient vanishes at x' = x, so PGD's start cannot be used) by steps along the gradient's sign
 * (linf) or its L2 direction, each projected onto the ε-ball around x and the valid range.
 * `clean` holds f(x)'s log-probabilities (no gradient).
 */
class TradesMaximizer extends Attack {
  constructor(model: Module, private readonly c: Config, private readonly e: number, private readonly seed: number | undefined, private readonly clean: Tensor) {
    super(model, c.clipValues === undefined ? {} : { clipValues: c.clipValues });
  }

  perturb(x: Tensor, y: Target): AttackResult {
    const b = this.batch(x, y);
    const objective = (out: Tensor) => klDivergence(out.logSoftmax(-1), this.clean, { logInput: true, logTarget: true, reduction: 'sum' });
    const alpha = (this.c.stepSize * this.e) / this.c.eps;
    let adv = tidy(() => b.x.add(randn(b.x.shape, 0, 0.001, subSeed(this.seed, 0, 0))));
    try {
      for (let s = 0; s < this.c.steps; s++) {
        const next = tidy(() => {
          const { grad } = this.lossGradient(adv, objective);
          const step = this.c.norm === 'linf'
            ? sign(grad).mul(alpha)
            : grad.div(perExample(perExampleNorm(grad, 'l2').add(1e-10), grad)).mul(alpha);
          const d = adv.add(step).sub(b.x);
          const proj = this.c.norm === 'linf'
            ? d.clamp(-this.e, this.e)
            : d.mul(perExample(perExampleNorm(d, 'l2').maximum(1e-30).pow(-1).mul(this.e).minimum(1), d));
          return this.clip(b.x.add(proj));
        });
        adv.dispose();
        adv = next;
      }
    } catch (err) {
      adv.dispose();
      throw err;
    }
    return { adversarial: adv, success: [], norm: new Float32Array(0) };
  }
}

/** Runs `fn` with every module of `model` in eval mode, then restores each module's own mode. */
function inEvalMode<T>(model: Module, fn: () => T): T {
  const modes = [...model.namedModules()].map(([, m]) => [m, m.training] as const);
  model.eval();
  try {
    return fn();
  } finally {
    for (const [m, on] of modes) m.training = on;
  }
}

function checkLabels(y: Tensor, n: number): void {
  if (y.dtype !== 'int32' || y.rank !== 1 || y.shape[0] !== n) {
    throw new ArgumentError(`${WHAT}: needs integer class labels y (int32 [${n}]) to attack, got ${y.dtype} [${y.shape.join(', ')}]`);
  }
}

/** PGD-AT and fast FGSM-AT: the first round(mixRatio·n) rows made adversarial, then the inner step on the mixed batch. */
function pgdStep(c: Config, s: StepInput, e: number): StepOutput {
  const n = s.x.shape[0];
  const k = e > 0 ? Math.round(c.mixRatio * n) : 0;
  if (k === 0) return c.inner(s);
  const seed = subSeed(c.seed, 0, s.step)?.seed;
  const x = tidy(() => {
    const xa = k === n ? s.x : rows(s.x, 0, k);
    const ya = k === n ? s.y : rows(s.y, 0, k);
    const adv = inEvalMode(s.model, () => new TrainingPGD(s.model, attackOptions(c, e, seed)).perturb(xa, ya).adversarial);
    return k === n ? adv : concat([adv, rows(s.x, k, n)], 0);
  });
  return c.inner({ ...s, x });
}

/** TRADES: CE(f(x), y) + β·KL(f(x)‖f(x')) / n, x' from the KL's inner maximisation (eval mode). */
function tradesStep(c: Config, s: StepInput, e: number): StepOutput {
  const seed = subSeed(c.seed, 0, s.step)?.seed;
  const adv = e > 0
    ? inEvalMode(s.model, () => tidy(() => {
      const clean = noGrad(() => s.model.forward(s.x).logSoftmax(-1));
      return new TradesMaximizer(s.model, c, e, seed, clean).perturb(s.x, s.y).adversarial;
    }))
    : null;
  s.optimizer.zeroGrad();
  const logits = s.model.forward(s.x);
  let loss = sparseCategoricalCrossEntropy(logits, s.y, { fromLogits: true });
  if (adv) {
    const robust = klDivergence(s.model.forward(adv).logSoftmax(-1), logits.logSoftmax(-1), { logInput: true, logTarget: true, reduction: 'batchmean' });
    loss = loss.add(robust.mul(c.beta));
  }
  const reg = s.model.regularizationLoss();
  (reg ? loss.add(reg) : loss).backward();
  if (s.clipGradValue !== undefined) clipGradValue(s.params, s.clipGradValue);
  if (s.clipGradNorm !== undefined) clipGradNorm(s.params, s.clipGradNorm);
  s.optimizer.step();
  return { loss, pred: logits };
}

/**
 * A `TrainStep` for adversarial training: `model.fit(x, y, { trainStep: eg.robust.adversarialStep({
 * method: 'fgsm', eps: 0.3, warmupEpochs: 2 }) })`.
 *
 * - `'pgd'` (Madry et al.): `steps` PGD steps from a random start; training on the result.
 * - `'fgsm'` (Wong et al. 2020, "fast is better than free"): one step of 1.25ε from a uniform
 *   start in the ε-ball, projected back; about as robust as PGD-AT at the cost of two passes.
 * - `'trades'` (Zhang et al. 2019): x' maximises KL(f(x)‖f(x')) from x + 0.001·N(0, 1); the loss is
 *   CE(f(x), y) + β·KL(f(x)‖f(x')). The model must output logits; the compiled loss is not used.
 *
 * The attack runs with the model in eval mode (dropout off, batch-norm running statistics used and
 * not updated) and its parameters frozen (their `.grad` untouched); the step then trains in the
 * mode `fit` set. PGD and FGSM hand the mixed batch to `inner` (default `standardStep`), which is
 * how adversarial training composes with DP-SGD. Labels must be int32 class indices. With `seed`
 * the random starts are a function of (seed, global step), so a resumed run draws the same ones.
 */
export function adversarialStep(opts: AdversarialStepOptions): AdversarialStep {
  const c = configure(opts);
  const step = ((s: StepInput): StepOutput => {
    checkObject(s, `${WHAT}: the step's input`, 'a StepInput (what fit hands a TrainStep)');
    if (!(s.model instanceof Module)) throw new ArgumentError(`${WHAT}: the step's model must be a Module, got ${describe(s.model)}`);
    if (!(s.x instanceof Tensor)) throw new ArgumentError(`${WHAT}: the step's x must be a Tensor, got ${describe(s.x)}`);
    if (!(s.y instanceof Tensor)) throw new ArgumentError(`${WHAT}: needs the batch's labels y, got ${describe(s.y)}`);
    checkLabels(s.y, s.x.shape[0]);
    const e = epsAt(c, s.epoch, s.step, s.batchesPerEpoch);
    return c.method === 'trades' ? tradesStep(c, s, e) : pgdStep(c, s, e);
  }) as AdversarialStep;
  step.epsAt = (epoch, s, batchesPerEpoch) => {
    checkInt(epoch, `${WHAT}.epsAt(): epoch`, 0);
    checkInt(s, `${WHAT}.epsAt(): step`, 0);
    if (batchesPerEpoch !== null) checkInt(batchesPerEpoch, `${WHAT}.epsAt(): batchesPerEpoch`, 1);
    return epsAt(c, epoch, s, batchesPerEpoch);
  };
  return step;
}
