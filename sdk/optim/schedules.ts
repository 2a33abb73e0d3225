/**
 * Learning-rate schedules. A scheduler sets each parameter group's learning rate as a function of
 * the group's initial rate and the step count; call `step()` once per epoch (or per batch, for warm-up), or hand it to
 * `fit` through the `LearningRateScheduler` callback.
 */
import { checkNumber, describe } from '../args.js';

/** `lrAt(t, base)` is public: a step count and a base rate, typed errors otherwise. */
function checkStep(t: unknown, base: unknown): void {
  checkNumber(t, 'lrAt: step', { finite: true });
  checkNumber(base, 'lrAt: base rate', { finite: true });
}
import { ArgumentError } from '../errors.js';
import { v, validate } from '../io/validate.js';

interface HasGroups {
  groups: { options: { lr: number } }[];
}

/** Base class of the learning-rate schedules: subclasses define `lrAt(t, base)`; `step()` applies it to every parameter group. */
export abstract class LRScheduler {
  /** Each group's initial learning rate (PyTorch's `base_lrs`). */
  protected readonly baseLrs: number[];
  /** Steps taken so far. */
  stepCount = 0;
  /** @param optimizer - The optimizer whose groups' `lr` this schedule sets; their current rates become the base rates. */
  constructor(readonly optimizer: HasGroups) {
    if (!Array.isArray(optimizer?.groups)) throw new ArgumentError(`a learning-rate schedule needs an optimizer, got ${describe(optimizer)}`);
    this.baseLrs = optimizer.groups.map((g) => g.options.lr);
  }
  /** Learning rate after `t` steps for a group whose initial rate is `base`. */
  abstract lrAt(t: number, base: number): number;
  /** Advances one step and sets the groups' learning rates. */
  step(): void {
    this.stepCount++;
    this.apply();
  }
  /** Sets every group's rate for the current step count. */
  protected apply(): void {
    this.optimizer.groups.forEach((g, i) => (g.options.lr = this.lrAt(this.stepCount, this.baseLrs[i])));
  }
  /** The current learning rate of group 0. */
  get lr(): number {
    return this.optimizer.groups[0].options.lr;
  }
  /** Step count and the groups' initial rates (PyTorch's `base_lrs`), so a scheduler built after the optimizer's state was loaded still resumes exactly. */
  stateDict(): {
    /** Steps taken. */
    stepCount: number;
    /** Each group's initial learning rate. */
    baseLrs: number[];
  } {
    return { stepCount: this.stepCount, baseLrs: [...this.baseLrs] };
  }
  /**
   * Restores the step count (and base rates). Checked before anything changes: ArgumentError when
   * a field is malformed or the rates it gives are not finite and >= 0.
   */
  loadStateDict(s: { stepCount: number; baseLrs?: number[] }): void {
    const st = validate(STATE, s, 'scheduler state', ArgumentError);
    const base = st.baseLrs ?? this.baseLrs;
    if (base.length !== this.baseLrs.length) throw new ArgumentError(`scheduler state has ${base.length} base rates, the optimizer has ${this.baseLrs.length} parameter groups`);
    const lrs = base.map((b) => this.lrAt(st.stepCount, b));
    const bad = lrs.findIndex((x) => !(Number.isFinite(x) && x >= 0));
    if (bad >= 0) throw new ArgumentError(`scheduler state gives group ${bad} the learning rate ${lrs[bad]} at step ${st.stepCount} (must be finite and >= 0)`);
    this.baseLrs.splice(0, this.baseLrs.length, ...base);
    this.stepCount = st.stepCount;
    this.apply();
  }
}

const STATE = v.object({ stepCount: v.int({ min: 0 }) }, { optional: { baseLrs: v.array(v.number({ min: 0 }), { max: 4096 }) } });

/** × gamma every `stepSize` steps. */
export class StepLR extends LRScheduler {
  /**
   * @param opt - The optimizer to schedule.
   * @param stepSize - Steps between decays (a positive integer).
   * @param gamma - Multiplicative factor per decay (default 0.1).
   */
  constructor(opt: HasGroups, readonly stepSize: number, readonly gamma = 0.1) {
    super(opt);
    if (!Number.isInteger(stepSize) || stepSize < 1) throw new ArgumentError(`stepSize must be a positive integer, got ${stepSize}`);
  }
  lrAt(t: number, base: number): number {
    checkStep(t, base);
    return base * this.gamma ** Math.floor(t / this.stepSize);
  }
}

/** × gamma every step. */
export class ExponentialLR extends LRScheduler {
  /**
   * @param opt - The optimizer to schedule.
   * @param gamma - Multiplicative factor per step (> 0).
   */
  constructor(opt: HasGroups, readonly gamma: number) {
    super(opt);
    if (!(gamma > 0)) throw new ArgumentError(`gamma must be > 0, got ${gamma}`);
  }
  lrAt(t: number, base: number): number {
    checkStep(t, base);
    return base * this.gamma ** t;
  }
}

/**
 * Cosine from the base rate down to `etaMin` (absolute) over `tMax` steps, as PyTorch's
 * `CosineAnnealingLR`: stepped past `tMax` it keeps following the cosine (back up to the base rate at
 * `2·tMax`, period `2·tMax`). To hold `etaMin` after `tMax` steps, stop stepping the schedule (or use
 * `tMax` = the total number of steps).
 */
export class CosineAnnealingLR extends LRScheduler {
  /**
   * @param opt - The optimizer to schedule.
   * @param tMax - Half period of the cosine, in steps (> 0).
   * @param etaMin - Learning rate at the bottom of the cosine (default 0).
   */
  constructor(opt: HasGroups, readonly tMax: number, readonly etaMin = 0) {
    super(opt);
    if (!(tMax > 0 && Number.isFinite(tMax))) throw new ArgumentError(`tMax must be finite and > 0, got ${tMax}`);
    if (!Number.isFinite(etaMin)) throw new ArgumentError(`etaMin must be finite, got ${etaMin}`);
  }
  lrAt(t: number, base: number): number {
    checkStep(t, base);
    return this.etaMin + ((base - this.etaMin) * (1 + Math.cos((Math.PI * t) / this.tMax))) / 2;
  }
}

/**
 * Linear warm-up from `startFactor`·base to base over `warmupSteps` steps; afterwards an optional
 * scheduler takes over (counting its own steps from the end of the warm-up).
 */
export class LinearWarmup extends LRScheduler {
  /**
   * @param opt - The optimizer to schedule.
   * @param warmupSteps - Length of the warm-up, in steps (a positive integer).
   * @param after - Schedule that takes over after the warm-up (optional).
   * @param startFactor - Fraction of the base rate at step 0 (default 0.1).
   */
  constructor(opt: HasGroups, readonly warmupSteps: number, readonly after?: LRScheduler, readonly startFactor = 0.1) {
    super(opt);
    if (!Number.isInteger(warmupSteps) || warmupSteps < 1) throw new ArgumentError(`warmupSteps must be a positive integer, got ${warmupSteps}`);
    this.apply();
  }
  lrAt(t: number, base: number): number {
    checkStep(t, base);
    if (t >= this.warmupSteps) return this.after ? this.after.lrAt(t - this.warmupSteps, base) : base;
    return base * (this.startFactor + ((1 - this.startFactor) * t) / this.warmupSteps);
  }
}

/**
 * Base rate times a factor going linearly from `startFactor` to `endFactor` over `totalIters` steps,
 * then staying at `endFactor` (PyTorch's `LinearLR`). Linear decay after a warm-up:
 * `new LinearWarmup(opt, w, new LinearLR(opt, 1, 0, total - w))`. As `CosineAnnealingLR`, it leaves the
 * rates alone until its first `step()` (so building it as another schedule's `after` changes nothing).
 */
export class LinearLR extends LRScheduler {
  /**
   * Factor `startFactor` at step 0 (default 1/3), `endFactor` (default 1) from step `totalIters` (default 5) on, as PyTorch.
   * @param opt - The optimizer to schedule.
   * @param startFactor - Factor of the base rate at step 0 (default 1/3).
   * @param endFactor - Factor from step `totalIters` on (default 1).
   * @param totalIters - Steps of the linear ramp (default 5).
   */
  constructor(opt: HasGroups, readonly startFactor = 1 / 3, readonly endFactor = 1, readonly totalIters = 5) {
    super(opt);
    checkNumber(startFactor, 'LinearLR startFactor', { finite: true });
    checkNumber(endFactor, 'LinearLR endFactor', { finite: true });
    if (!(startFactor > 0 && startFactor <= 1)) throw new ArgumentError(`LinearLR startFactor must be in (0, 1], got ${startFactor}`);
    if (!(endFactor >= 0 && endFactor <= 1)) throw new ArgumentError(`LinearLR endFactor must be in [0, 1], got ${endFactor}`);
    if (!Number.isInteger(totalIters) || totalIters < 1) throw new ArgumentError(`LinearLR totalIters must be a positive integer, got ${describe(totalIters)}`);
  }
  lrAt(t: number, base: number): number {
    checkStep(t, base);
    const f = Math.min(Math.max(t, 0), this.totalIters) / this.totalIters;
    return base * (this.startFactor + (this.endFactor - this.startFactor) * f);
  }
}

/** Base rate times any function of the step count. */
export class LambdaLR extends LRScheduler {
  /**
   * @param opt - The optimizer to schedule.
   * @param fn - Factor applied to the base rate as a function of the step count.
   */
  constructor(opt: HasGroups, readonly fn: (t: number) => number) {
    super(opt);
    if (typeof fn !== 'function') throw new ArgumentError(`LambdaLR needs a function of the step count, got ${describe(fn)}`);
  }
  lrAt(t: number, base: number): number {
    checkStep(t, base);
    const f = this.fn(t);
    // A NaN rate would silently stop (or wreck) training: refuse it at the step that produced it.
    if (typeof f !== 'number' || !Number.isFinite(f)) {
      throw new ArgumentError(`LambdaLR: the function returned ${describe(f)} at step ${t}; it must return a finite number`);
    }
    return base * f;
  }
}
