/** Training callbacks: hooks into `fit` (per batch and epoch), early stopping, checkpoints, LR schedules. */
import { ArgumentError } from '../errors.js';
import { checkBool, checkFunction, checkInt, checkNumber, checkObject, checkOptions, describe } from '../args.js';
import { keep, tidy } from '../memory.js';
import type { Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizers.js';
import type { LRScheduler } from '../optim/schedules.js';
import { saveModel, serializeModel, type ModelArtifacts, type SaveOptions } from '../io/model-io.js';
import type { Tensor } from '../tensor.js';
import { anyNumber, encodeJson } from './checkpoint.js';
import { v, validate } from '../io/validate.js';

/** Metric values of an epoch or batch by name (`loss`, `val_loss`, `acc`, ...). */
export type Logs = Record<string, number>;

/** What a callback can see and steer. */
export interface TrainingContext {
  /** The model being trained. */
  model: Module;
  /** The optimizer `fit` steps. */
  optimizer: Optimizer;
  /** Set to true to end training after the current epoch. */
  stopTraining: boolean;
  /** Total number of epochs of this `fit` call. */
  epochs: number;
  /** Batches per epoch, or null when unknown (streamed data). */
  batchesPerEpoch: number | null;
  /** The epoch running now. */
  epoch: number;
  /** Optimizer steps taken so far in this run (a resumed run counts on from its checkpoint). */
  step: number;
  /**
   * The whole training state now (epoch and batch position, RNG, history, every callback's state),
   * for `saveModel`'s `training` option. Consistent inside `afterEpochEnd`/`afterBatchEnd`.
   */
  trainingState(): {
    /** The JSON part: epoch and batch position, RNG, history, callbacks' values. */
    state: Record<string, unknown>;
    /** The tensor part (e.g. best weights), stored as `training.<name>`. */
    tensors: Record<string, Tensor>;
  };
}

/** A callback's part of a training checkpoint: JSON-safe values (NaN allowed) and tensors. */
export interface CallbackState {
  /** Plain JSON-serialisable values of the callback's state. */
  values: Record<string, unknown>;
  /** Tensors of the callback's state (e.g. best weights), stored alongside the values. */
  tensors?: Record<string, Tensor>;
}

/** Base of `fit`'s callbacks (Keras' `Callback`): override the hooks you need; each may be async. */
export abstract class Callback {
  /** The running `fit`: model, optimizer, options (set before `onTrainBegin`). */
  protected ctx!: TrainingContext;
  /** Called by `fit` before training starts, with the context the hooks read as `this.ctx`. */
  setContext(ctx: TrainingContext): void {
    this.ctx = ctx;
  }
  /** Before the first epoch. */
  onTrainBegin(_logs: Logs): void | Promise<void> {}
  /** After the last epoch (also after early stopping), with the last epoch's logs. */
  onTrainEnd(_logs: Logs): void | Promise<void> {}
  /** Before each epoch (0-based). */
  onEpochBegin(_epoch: number): void | Promise<void> {}
  /** After each epoch, with its logs (loss, metrics, validation values). */
  onEpochEnd(_epoch: number, _logs: Logs): void | Promise<void> {}
  /** Before each batch (0-based within the epoch). */
  onBatchBegin(_batch: number): void | Promise<void> {}
  /** After each batch's optimizer step, with the batch's logs. */
  onBatchEnd(_batch: number, _logs: Logs): void | Promise<void> {}
  /**
   * Called once every callback's `onEpochEnd` has run and the history holds the epoch (likewise
   * `afterBatchEnd` after every `onBatchEnd`): the training state is consistent here, so
   * checkpoints of it are written here.
   */
  afterEpochEnd(_epoch: number, _logs: Logs): void | Promise<void> {}
  /** After every callback's `onBatchEnd` for the batch (see `afterEpochEnd`). */
  afterBatchEnd(_batch: number, _logs: Logs): void | Promise<void> {}
  /** State to keep in training checkpoints (PyTorch Lightning's callback `state_dict`); null when none. */
  stateDict(): CallbackState | null {
    return null;
  }
  /** Restores `stateDict()`'s output; `tensors` are freed after the call (copy what you keep). */
  loadStateDict(_s: CallbackState): void {}
}

/** A callback from plain functions. */
export class LambdaCallback extends Callback {
  constructor(private readonly fns: Partial<Pick<Callback, 'onTrainBegin' | 'onTrainEnd' | 'onEpochBegin' | 'onEpochEnd' | 'onBatchBegin' | 'onBatchEnd'>>) {
    super();
    if (fns === null || typeof fns !== 'object') throw new ArgumentError(`LambdaCallback needs an object of hook functions, got ${describe(fns)}`);
    for (const [k, f] of Object.entries(fns)) if (f !== undefined) checkFunction(f, `LambdaCallback: ${k.slice(0, 40)}`);
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
  const m = mode === 'auto' ? (/acc|auc|precision|recall|f1/i.test(monitor) ? 'max' : 'min') : mode;
  return m === 'min' ? a < b - minDelta : a > b + minDelta;
}
function checkMonitor(monitor: unknown, mode: unknown, who: string): void {
  if (monitor !== undefined && typeof monitor !== 'string') throw new ArgumentError(`${who} monitor must be a metric name, got ${describe(monitor)}`);
  if (mode !== undefined && mode !== 'min' && mode !== 'max' && mode !== 'auto') throw new ArgumentError(`${who} mode must be 'min', 'max' or 'auto', got ${describe(mode)}`);
}

/** Stops when `monitor` has not improved by `minDelta` for `patience` epochs; can restore the best weights. */
export class EarlyStopping extends Callback {
  /** Best monitored value seen so far (NaN before the first epoch). */
  best = NaN;
  /** Epoch of `best` (-1 before the first epoch). */
  bestEpoch = -1;
  /** Epoch at which training was stopped (-1 if it was not). */
  stoppedEpoch = -1;
  #wait = 0;
  #bestWeights: Record<string, Tensor> | null = null;
  /**
   * @param opts - What to monitor and when to stop.
   * @throws ArgumentError on invalid options.
   */
  constructor(readonly opts: {
    /** Metric name in the epoch logs (default `'val_loss'`). */
    monitor?: string;
    /** Smallest change that counts as an improvement (default 0). */
    minDelta?: number;
    /** Epochs without improvement before stopping (default 0). */
    patience?: number;
    /** `'min'`, `'max'`, or `'auto'` (default: max for acc/auc/precision/recall/f1, else min). */
    mode?: Mode;
    /** Restore the weights of the best epoch when training ends (default false). */
    restoreBestWeights?: boolean;
  } = {}) {
    super();
    checkOptions(opts, 'EarlyStopping options');
    checkMonitor(opts.monitor, opts.mode, 'EarlyStopping');
    if (opts.minDelta !== undefined) checkNumber(opts.minDelta, 'EarlyStopping minDelta', { finite: true });
    if (opts.patience !== undefined) checkInt(opts.patience, 'EarlyStopping patience', 0);
    if (opts.restoreBestWeights !== undefined) checkBool(opts.restoreBestWeights, 'EarlyStopping restoreBestWeights');
  }
  /** Name of the monitored metric (`opts.monitor`, default `'val_loss'`). */
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
  override stateDict(): CallbackState {
    return { values: { best: this.best, bestEpoch: this.bestEpoch, stoppedEpoch: this.stoppedEpoch, wait: this.#wait }, tensors: this.#bestWeights ?? undefined };
  }
  override loadStateDict(s: CallbackState): void {
    checkObject(s, 'EarlyStopping.loadStateDict: the state', '{ values, tensors? }');
    const epoch = v.int({ min: -1, max: 1e9 });
    const { best, bestEpoch, stoppedEpoch, wait } = validate(v.object({ best: anyNumber, bestEpoch: epoch, stoppedEpoch: epoch, wait: v.int({ min: 0, max: 1e9 }) }), s.values, 'EarlyStopping state');
    const weights = s.tensors && Object.keys(s.tensors).length ? s.tensors : null;
    if (this.opts.restoreBestWeights && !weights && bestEpoch >= 0) throw new ArgumentError('EarlyStopping restores the best weights, but the checkpoint holds none');
    Object.assign(this, { best, bestEpoch, stoppedEpoch });
    this.#wait = wait;
    this.#free();
    if (weights && this.opts.restoreBestWeights) this.#bestWeights = tidy(() => Object.fromEntries(Object.entries(weights).map(([k, t]) => [k, keep(t.clone())])));
  }
}

/**
 * Saves the model (and optimizer state) after each epoch, or only when `monitor` improves. Writes a
 * directory in Node (`dir`), or hands the artifacts to `onSave` anywhere.
 */
export class ModelCheckpoint extends Callback {
  /** Best monitored value seen so far (NaN before the first save decision). */
  best = NaN;
  /** Number of checkpoints written so far. */
  saves = 0;
  #pending: Logs | null = null;
  /**
   * @param opts - Where and when to save; needs `dir` (Node) or `onSave`.
   * @throws ArgumentError on invalid options.
   */
  constructor(readonly opts: {
    /** Directory to write (Node only); replaced atomically at each save. */
    dir?: string;
    /** Receives the artifacts and the epoch at each save (works in every runtime). */
    onSave?: (a: ModelArtifacts, epoch: number) => void | Promise<void>;
    /** Metric name to watch with `saveBestOnly` (default `'val_loss'`). */
    monitor?: string;
    /** Save only when `monitor` improves (default false). */
    saveBestOnly?: boolean;
    /** `'min'`, `'max'` or `'auto'` (default). */
    mode?: Mode;
    /** Also save the optimizer state (default true). */
    includeOptimizer?: boolean;
    /**
     * Also store the training state (epoch, RNG, history, schedules, callbacks' state), so that
     * `fit(..., { resumeFrom })` continues bitwise as if the run had never stopped.
     */
    saveTrainingState?: boolean;
    /** Save at every epoch's end (default) or every this many optimizer steps (mid-epoch; the monitor is then read from the batch logs). */
    saveFreq?: 'epoch' | number;
  }) {
    super();
    if (opts === null || typeof opts !== 'object') throw new ArgumentError(`ModelCheckpoint needs options { dir } or { onSave }, got ${describe(opts)}`);
    if (opts.dir !== undefined && typeof opts.dir !== 'string') throw new ArgumentError(`ModelCheckpoint dir must be a path string, got ${describe(opts.dir)}`);
    if (opts.onSave !== undefined) checkFunction(opts.onSave, 'ModelCheckpoint onSave');
    checkMonitor(opts.monitor, opts.mode, 'ModelCheckpoint');
    if (!opts.dir && !opts.onSave) throw new ArgumentError('ModelCheckpoint needs a `dir` (Node) or an `onSave` function');
    const f = opts.saveFreq ?? 'epoch';
    if (f !== 'epoch' && !(Number.isSafeInteger(f) && f >= 1)) throw new ArgumentError(`ModelCheckpoint saveFreq must be 'epoch' or a positive integer, got ${f}`);
  }
  /** Decides here (the monitored value is final) and writes in afterEpochEnd, when every callback has updated its state. */
  override onEpochEnd(_epoch: number, logs: Logs): void {
    if (this.opts.saveFreq === undefined || this.opts.saveFreq === 'epoch') this.#pending = this.#wants(logs) ? { ...logs } : null;
  }
  override onBatchEnd(_batch: number, logs: Logs): void {
    const f = this.opts.saveFreq;
    if (typeof f === 'number' && this.ctx.step % f === 0) this.#pending = this.#wants(logs) ? { ...logs } : null;
  }
  override async afterEpochEnd(epoch: number): Promise<void> {
    await this.#flush(epoch);
  }
  override async afterBatchEnd(): Promise<void> {
    await this.#flush(this.ctx.epoch);
  }
  #wants(logs: Logs): boolean {
    if (!this.opts.saveBestOnly) return true;
    const monitor = this.opts.monitor ?? 'val_loss';
    const v = logs[monitor];
    if (v === undefined) throw new ArgumentError(`ModelCheckpoint monitors '${monitor}', which the logs do not have`);
    if (!Number.isNaN(this.best) && !better(this.opts.mode ?? 'auto', monitor, v, this.best, 0)) return false;
    this.best = v;
    return true;
  }
  async #flush(epoch: number): Promise<void> {
    const logs = this.#pending;
    if (!logs) return;
    this.#pending = null;
    this.saves++;
    const o = {
      optimizer: this.opts.includeOptimizer ?? true ? this.ctx.optimizer : undefined,
      userData: { epoch, step: this.ctx.step, logs: encodeJson(logs) as Record<string, unknown> },
      training: this.opts.saveTrainingState ? this.ctx.trainingState() : undefined,
    };
    const art = this.opts.dir ? await saveReplacing(this.ctx.model, this.opts.dir, o) : serializeModel(this.ctx.model, o);
    await this.opts.onSave?.(art, epoch);
  }
  override stateDict(): CallbackState {
    return { values: { best: this.best, saves: this.saves } };
  }
  override loadStateDict(s: CallbackState): void {
    checkObject(s, 'ModelCheckpoint.loadStateDict: the state', '{ values, tensors? }');
    ({ best: this.best, saves: this.saves } = validate(v.object({ best: anyNumber, saves: v.int({ min: 0 }) }), s.values, 'ModelCheckpoint state'));
  }
}

/**
 * Node: saves into `<dir>.partial`, then swaps it in for `dir`, so a crash mid-write never leaves a
 * checkpoint whose model.json and weights come from different saves (which would resume silently
 * wrong); at worst `dir` is briefly absent and the previous checkpoint is in `<dir>.old`.
 */
async function saveReplacing(model: Module, dir: string, o: SaveOptions): Promise<ModelArtifacts> {
  const fs = (await import(/* @vite-ignore */ 'node:fs/promises' as string)) as typeof import('node:fs/promises');
  const tmp = `${dir}.partial`;
  const old = `${dir}.old`;
  await fs.rm(tmp, { recursive: true, force: true });
  const art = await saveModel(model, tmp, o);
  await fs.rm(old, { recursive: true, force: true });
  const had = await fs.rename(dir, old).then(() => true, (e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') return false;
    throw e;
  });
  await fs.rename(tmp, dir);
  if (had) await fs.rm(old, { recursive: true, force: true });
  return art;
}

/** Steps an LR scheduler after every epoch (default) or every batch. */
export class LearningRateScheduler extends Callback {
  /**
   * @param scheduler - The LR scheduler to step.
   * @param per - Step it after every `'epoch'` (default) or every `'batch'`.
   */
  constructor(readonly scheduler: LRScheduler, readonly per: 'epoch' | 'batch' = 'epoch') {
    super();
    if (typeof (scheduler as { step?: unknown } | null)?.step !== 'function') throw new ArgumentError(`LearningRateScheduler needs an LR scheduler, got ${describe(scheduler)}`);
    if (per !== 'epoch' && per !== 'batch') throw new ArgumentError(`LearningRateScheduler steps per 'epoch' or 'batch', got ${describe(per)}`);
  }
  override onBatchEnd(): void {
    if (this.per === 'batch') this.scheduler.step();
  }
  override onEpochEnd(_e: number, logs: Logs): void {
    if (this.per === 'epoch') this.scheduler.step();
    logs.lr = this.scheduler.lr;
  }
  override stateDict(): CallbackState {
    return { values: this.scheduler.stateDict() };
  }
  override loadStateDict(s: CallbackState): void {
    checkObject(s, 'LearningRateScheduler.loadStateDict: the state', '{ values, tensors? }');
    this.scheduler.loadStateDict(s.values as { stepCount: number; baseLrs?: number[] });
  }
}
