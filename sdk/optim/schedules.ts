/**
 * Learning-rate schedules. A scheduler sets each parameter group's learning rate as a function of
 * the group's initial rate and the step count; call `step()` once per epoch (or per batch, for warm-up), or hand it to
 * `fit` through the `LearningRateScheduler` callback.
 */
import { ArgumentError } from '../errors.js';

interface HasGroups {
  groups: { options: { lr: number } }[];
}

export abstract class LRScheduler {
  protected readonly baseLrs: number[];
  /** Steps taken so far. */
  stepCount = 0;
  constructor(readonly optimizer: HasGroups) {
    this.baseLrs = optimizer.groups.map((g) => g.options.lr);
  }
  /** Learning rate after `t` steps for a group whose initial rate is `base`. */
  abstract lrAt(t: number, base: number): number;
  /** Advances one step and sets the groups' learning rates. */
  step(): void {
    this.stepCount++;
    this.apply();
  }
  protected apply(): void {
    this.optimizer.groups.forEach((g, i) => (g.options.lr = this.lrAt(this.stepCount, this.baseLrs[i])));
  }
  get lr(): number {
    return this.optimizer.groups[0].options.lr;
  }
  /** Step count and the groups' initial rates (PyTorch's `base_lrs`), so a scheduler built after the optimizer's state was loaded still resumes exactly. */
  stateDict(): { stepCount: number; baseLrs: number[] } {
    return { stepCount: this.stepCount, baseLrs: [...this.baseLrs] };
  }
  loadStateDict(s: { stepCount: number; baseLrs?: number[] }): void {
    if (!s || !Number.isSafeInteger(s.stepCount) || s.stepCount < 0) throw new ArgumentError(`scheduler state needs a non-negative integer stepCount, got ${s?.stepCount}`);
    if (s.baseLrs !== undefined) {
      if (!Array.isArray(s.baseLrs) || s.baseLrs.length !== this.baseLrs.length || !s.baseLrs.every((v) => typeof v === 'number' && Number.isFinite(v))) {
        throw new ArgumentError(`scheduler state has ${Array.isArray(s.baseLrs) ? s.baseLrs.length : 'no'} finite base rates, the optimizer has ${this.baseLrs.length} parameter groups`);
      }
      this.baseLrs.splice(0, this.baseLrs.length, ...s.baseLrs);
    }
    this.stepCount = s.stepCount;
    this.apply();
  }
}

/** × gamma every `stepSize` steps. */
export class StepLR extends LRScheduler {
  constructor(opt: HasGroups, readonly stepSize: number, readonly gamma = 0.1) {
    super(opt);
    if (!Number.isInteger(stepSize) || stepSize < 1) throw new ArgumentError(`stepSize must be a positive integer, got ${stepSize}`);
  }
  lrAt(t: number, base: number): number {
    return base * this.gamma ** Math.floor(t / this.stepSize);
  }
}

/** × gamma every step. */
export class ExponentialLR extends LRScheduler {
  constructor(opt: HasGroups, readonly gamma: number) {
    super(opt);
    if (!(gamma > 0)) throw new ArgumentError(`gamma must be > 0, got ${gamma}`);
  }
  lrAt(t: number, base: number): number {
    return base * this.gamma ** t;
  }
}

/** Cosine from the base rate down to `etaMin` (absolute) over `tMax` steps, then stays there. */
export class CosineAnnealingLR extends LRScheduler {
  constructor(opt: HasGroups, readonly tMax: number, readonly etaMin = 0) {
    super(opt);
    if (!(tMax > 0)) throw new ArgumentError(`tMax must be > 0, got ${tMax}`);
  }
  lrAt(t: number, base: number): number {
    const c = Math.min(t, this.tMax);
    return this.etaMin + ((base - this.etaMin) * (1 + Math.cos((Math.PI * c) / this.tMax))) / 2;
  }
}

/**
 * Linear warm-up from `startFactor`·base to base over `warmupSteps` steps; afterwards an optional
 * scheduler takes over (counting its own steps from the end of the warm-up).
 */
export class LinearWarmup extends LRScheduler {
  constructor(opt: HasGroups, readonly warmupSteps: number, readonly after?: LRScheduler, readonly startFactor = 0.1) {
    super(opt);
    if (!Number.isInteger(warmupSteps) || warmupSteps < 1) throw new ArgumentError(`warmupSteps must be a positive integer, got ${warmupSteps}`);
    this.apply();
  }
  lrAt(t: number, base: number): number {
    if (t >= this.warmupSteps) return this.after ? this.after.lrAt(t - this.warmupSteps, base) : base;
    return base * (this.startFactor + ((1 - this.startFactor) * t) / this.warmupSteps);
  }
}

/** Base rate times any function of the step count. */
export class LambdaLR extends LRScheduler {
  constructor(opt: HasGroups, readonly fn: (t: number) => number) {
    super(opt);
  }
  lrAt(t: number, base: number): number {
    return base * this.fn(t);
  }
}
