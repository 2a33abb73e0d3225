/** Training callbacks: hooks into `fit` (per batch and epoch), early stopping, checkpoints, LR schedules. */
import { ArgumentError } from '../errors.js';
import { keep, tidy } from '../memory.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizers.js';
import type { LRScheduler } from '../optim/schedules.js';
import { saveModel, serializeModel, type ModelArtifacts } from '../io/model-io.js';
import type { Tensor } from '../tensor.js';

export type Logs = Record<string, number>;

/** What a callback can see and steer. */
export interface TrainingContext {
  model: Module;
  optimizer: Optimizer<{ lr: number }>;
  /** Set to true to end training after the current epoch. */
  stopTraining: boolean;
  epochs: number;
  batchesPerEpoch: number | null;
}

export abstract class Callback {
  protected ctx!: TrainingContext;
  setContext(ctx: TrainingContext): void {
    this.ctx = ctx;
  }
  onTrainBegin(_logs: Logs): void | Promise<void> {}
  onTrainEnd(_logs: Logs): void | Promise<void> {}
  onEpochBegin(_epoch: number): void | Promise<void> {}
  onEpochEnd(_epoch: number, _logs: Logs): void | Promise<void> {}
  onBatchBegin(_batch: number): void | Promise<void> {}
  onBatchEnd(_batch: number, _logs: Logs): void | Promise<void> {}
}

/** A callback from plain functions. */
export class LambdaCallback extends Callback {
  constructor(private readonly fns: Partial<Pick<Callback, 'onTrainBegin' | 'onTrainEnd' | 'onEpochBegin' | 'onEpochEnd' | 'onBatchBegin' | 'onBatchEnd'>>) {
    super();
  }
  override onTrainBegin(l: Logs) { return this.fns.onTrainBegin?.(l); }
  override onTrainEnd(l: Logs) { return this.fns.onTrainEnd?.(l); }
  override onEpochBegin(e: number) { return this.fns.onEpochBegin?.(e); }
  override onEpochEnd(e: number, l: Logs) { return this.fns.onEpochEnd?.(e, l); }
  override onBatchBegin(b: number) { return this.fns.onBatchBegin?.(b); }
  override onBatchEnd(b: number, l: Logs) { return this.fns.onBatchEnd?.(b, l); }
}

type Mode = 'min' | 'max' | 'auto';
function better(mode: Mode, monitor: string, a: number, b: number, minDelta: number): boolean {
  const m = mode === 'auto' ? (/acc|auc|precision|recall/i.test(monitor) ? 'max' : 'min') : mode;
  return m === 'min' ? a < b - minDelta : a > b + minDelta;
}

/** Stops when `monitor` has not improved by `minDelta` for `patience` epochs; can restore the best weights. */
export class EarlyStopping extends Callback {
  best = NaN;
  bestEpoch = -1;
  stoppedEpoch = -1;
  #wait = 0;
  #bestWeights: Record<string, Tensor> | null = null;
  constructor(readonly opts: { monitor?: string; minDelta?: number; patience?: number; mode?: Mode; restoreBestWeights?: boolean } = {}) {
    super();
  }
  get monitor(): string {
    return this.opts.monitor ?? 'val_loss';
  }
  override onTrainBegin(): void {
    this.best = NaN;
    this.#wait = 0;
  }
  override onEpochEnd(epoch: number, logs: Logs): void {
    const v = logs[this.monitor];
    if (v === undefined) throw new ArgumentError(`EarlyStopping monitors '${this.monitor}', which the logs do not have (have: ${Object.keys(logs).join(', ')})`);
    if (Number.isNaN(this.best) || better(this.opts.mode ?? 'auto', this.monitor, v, this.best, this.opts.minDelta ?? 0)) {
      this.best = v;
      this.bestEpoch = epoch;
      this.#wait = 0;
      if (this.opts.restoreBestWeights) this.#snapshot();
    } else if (++this.#wait > (this.opts.patience ?? 0)) {
      this.stoppedEpoch = epoch;
      this.ctx.stopTraining = true;
    }
  }
  override onTrainEnd(): void {
    if (this.opts.restoreBestWeights && this.#bestWeights) this.ctx.model.loadStateDict(this.#bestWeights);
    this.#free();
  }
  #snapshot(): void {
    this.#free();
    this.#bestWeights = tidy(() => Object.fromEntries(Object.entries(this.ctx.model.stateDict()).map(([k, t]) => [k, keep(t.clone().detach())])));
  }
  #free(): void {
    if (this.#bestWeights) for (const t of Object.values(this.#bestWeights)) t.dispose();
    this.#bestWeights = null;
  }
}

/**
 * Saves the model (and optimizer state) after each epoch, or only when `monitor` improves. Writes a
 * directory in Node (`dir`), or hands the artifacts to `onSave` anywhere.
 */
export class ModelCheckpoint extends Callback {
  best = NaN;
  saves = 0;
  constructor(readonly opts: { dir?: string; onSave?: (a: ModelArtifacts, epoch: number) => void | Promise<void>; monitor?: string; saveBestOnly?: boolean; mode?: Mode; includeOptimizer?: boolean }) {
    super();
    if (!opts.dir && !opts.onSave) throw new ArgumentError('ModelCheckpoint needs a `dir` (Node) or an `onSave` function');
  }
  override async onEpochEnd(epoch: number, logs: Logs): Promise<void> {
    const monitor = this.opts.monitor ?? 'val_loss';
    if (this.opts.saveBestOnly) {
      const v = logs[monitor];
      if (v === undefined) throw new ArgumentError(`ModelCheckpoint monitors '${monitor}', which the logs do not have`);
      if (!Number.isNaN(this.best) && !better(this.opts.mode ?? 'auto', monitor, v, this.best, 0)) return;
      this.best = v;
    }
    const o = { optimizer: this.opts.includeOptimizer ?? true ? this.ctx.optimizer : undefined, userData: { epoch, logs } };
    const art = this.opts.dir ? await saveModel(this.ctx.model, this.opts.dir, o) : serializeModel(this.ctx.model, o);
    await this.opts.onSave?.(art, epoch);
    this.saves++;
  }
}

/** Steps an LR scheduler after every epoch (default) or every batch. */
export class LearningRateScheduler extends Callback {
  constructor(readonly scheduler: LRScheduler, readonly per: 'epoch' | 'batch' = 'epoch') {
    super();
  }
  override onBatchEnd(): void {
    if (this.per === 'batch') this.scheduler.step();
  }
  override onEpochEnd(_e: number, logs: Logs): void {
    if (this.per === 'epoch') this.scheduler.step();
    logs.lr = this.scheduler.lr;
  }
}
