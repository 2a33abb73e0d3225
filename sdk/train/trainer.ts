/**
 * Keras-style training on any `Module`: `compile` (optimizer, loss, metrics), `fit` (epochs,
 * mini-batches with seeded shuffling, validation split or data, callbacks, progress), `evaluate`
 * and `predict` in batches. Attached to `Module.prototype`, so one model definition works with both
 * the PyTorch-style loop and these.
 */
import { ArgumentError, FormatError, ShapeError } from '../errors.js';
import { concat } from '../ops.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../memory.js';
import { Dataset, takeRows, type Batch } from '../data.js';
import { getLoss, type LossFn, type LossName } from '../losses.js';
import { setTrainingImpl, type Module } from '../nn/module.js';
import type { Optimizer } from '../optim/optimizers.js';
import { standardStep, type TrainStep } from './step.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { checkOptions, describe } from '../args.js';
import type { Callback, Logs, TrainingContext } from './callbacks.js';
import { captureTrainingState, readCheckpoint, type ReadCheckpoint, type TrainingState } from './checkpoint.js';
import { setRngState, zeros } from '../creation.js';
import type { ModelSource } from '../io/model-io.js';
import { resolveMetric, type MetricFn, type MetricName, type NamedMetric } from './metrics.js';
import { Progress } from './progress.js';

/** What `compile` attaches to a model: optimizer, loss and metrics used by `fit` and `evaluate`. */
export interface CompileOptions {
  /** The optimizer `fit` steps. */
  optimizer: Optimizer;
  /** A built-in loss name or a loss function `(pred, target) => Tensor`. */
  loss: LossName | LossFn;
  /** Metrics logged per epoch: built-in names (e.g. `'accuracy'`), named metrics or metric functions. */
  metrics?: (MetricName | NamedMetric | MetricFn)[];
  /** Clip gradients to this global L2 norm before each step. */
  clipGradNorm?: number;
  /** Clip every gradient element into ±this before each step. */
  clipGradValue?: number;
}

/** Options of `fit`. */
export interface FitOptions {
  /** Number of epochs to train (default 1). */
  epochs?: number;
  /** Samples per batch when `x` is a tensor (default 32). */
  batchSize?: number;
  /** Reshuffle the samples every epoch (default true; tensor inputs only). */
  shuffle?: boolean;
  /** Seed of the per-epoch shuffles. */
  seed?: number;
  /** Fraction of the samples (taken from the end, before shuffling) held out for validation. */
  validationSplit?: number;
  /** Held-out data evaluated after each epoch (logs `val_loss` and `val_<metric>`). */
  validationData?: [Tensor, Tensor] | Dataset;
  /** Callbacks run at the training events, in order. */
  callbacks?: Callback[];
  /** 0 silent, 1 progress bar in a terminal (log lines otherwise), 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
  /** Epoch to start counting from, e.g. to continue a run by hand (default 0; not with `resumeFrom`). */
  initialEpoch?: number;
  /**
   * Continue the run saved by `ModelCheckpoint({ saveTrainingState: true })` (a Node directory or
   * the artifacts): weights, optimizer, RNG position, epoch and batch, history, schedules and
   * callbacks' states are restored, so the run ends bitwise where an uninterrupted one would. Pass
   * the same data, options and callbacks (in the same order); the returned history includes the
   * checkpointed epochs.
   */
  resumeFrom?: ModelSource;
  /**
   * Replaces the optimisation step run on each batch (default `standardStep`: forward, loss,
   * backward, clipping, optimizer step) — e.g. `eg.robust.adversarialStep(...)` for adversarial
   * training. Everything else about `fit` stays the same.
   */
  trainStep?: TrainStep;
}

/** What `fit` returns: the logs of every epoch (Keras' `History`). */
export interface History {
  /** The epoch indices that ran. */
  epoch: number[];
  /** Each logged metric (`loss`, `val_loss`, ...) with one value per epoch, aligned with `epoch`. */
  history: Record<string, number[]>;
}

interface Compiled {
  optimizer: Optimizer;
  loss: LossFn;
  metrics: NamedMetric[];
  clipNorm?: number;
  clipValue?: number;
}

const compiled = new WeakMap<Module, Compiled>();

function getCompiled(m: Module): Compiled {
  const c = compiled.get(m);
  if (!c) throw new ArgumentError('call model.compile({ optimizer, loss }) before fit() or evaluate()');
  return c;
}

function compile(m: Module, o: CompileOptions): void {
  if (!o || !o.optimizer) throw new ArgumentError('compile() needs an optimizer');
  if (o.metrics !== undefined && !Array.isArray(o.metrics)) throw new ArgumentError(`compile(): metrics must be an array, got ${describe(o.metrics)}`);
  if (!Array.isArray(o.optimizer.groups)) throw new ArgumentError(`compile(): optimizer must be an Optimizer, got ${describe(o.optimizer)}`);
  // An optimizer of another model would make fit() train nothing without a word. Holding only
  // some of the parameters is fine (frozen parts); holding none of them is a mistake.
  const own = new Set(m.parameters());
  if (!o.optimizer.groups.some((g) => g.params.some((p) => own.has(p)))) {
    throw new ArgumentError(`compile(): the optimizer holds none of this model's ${own.size} parameters (was it made for another model's parameters?)`);
  }
  compiled.set(m, {
    optimizer: o.optimizer, loss: getLoss(o.loss), metrics: (o.metrics ?? []).map(resolveMetric),
    clipNorm: o.clipGradNorm, clipValue: o.clipGradValue,
  });
}

/** Sums of per-batch values weighted by batch size. */
class Meter {
  sums: Record<string, number> = {};
  count = 0;
  add(values: Record<string, number>, n: number): void {
    // An empty batch (Poisson sampling in DP-SGD) weighs nothing; its metrics are 0/0.
    if (n === 0) return;
    for (const [k, v] of Object.entries(values)) this.sums[k] = (this.sums[k] ?? 0) + v * n;
    this.count += n;
  }
  means(prefix = ''): Logs {
    return Object.fromEntries(Object.entries(this.sums).map(([k, v]) => [prefix + k, v / Math.max(this.count, 1)]));
  }
}

function evalBatch(model: Module, c: Compiled, b: Batch, meter: Meter): void {
  tidy(() => noGrad(() => {
    if (!b.y) throw new ArgumentError('evaluation needs targets');
    const pred = model.forward(b.x);
    const values: Record<string, number> = { loss: c.loss(pred, b.y).item() };
    for (const m of c.metrics) values[m.name] = m.fn(pred, b.y).item();
    meter.add(values, b.x.shape[0]);
  }));
}

async function runEvaluation(model: Module, c: Compiled, data: Dataset, prefix: string): Promise<Logs> {
  const wasTraining = model.training;
  model.eval();
  const meter = new Meter();
  try {
    for await (const b of data.batches(0)) {
      try {
        evalBatch(model, c, b, meter);
      } finally {
        b.x.dispose();
        b.y?.dispose();
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return meter.means(prefix);
}

async function fit(model: Module, x: Tensor | Dataset, y?: Tensor | FitOptions, maybe?: FitOptions): Promise<History> {
  const c = getCompiled(model);
  const isDs = x instanceof Dataset;
  if (!isDs) assertTensor(x, 'fit(x, y, options) needs x as a Tensor or a Dataset');
  const o: FitOptions = checkOptions((isDs ? (y as FitOptions) : maybe) ?? undefined, 'fit options');
  const epochs = o.epochs ?? 1;
  if (!Number.isInteger(epochs) || epochs < 1) throw new ArgumentError(`epochs must be a positive integer, got ${epochs}`);
  if (o.resumeFrom !== undefined && o.initialEpoch !== undefined) throw new ArgumentError('fit: pass resumeFrom or initialEpoch, not both (a checkpoint knows its epoch)');
  const batchSize = o.batchSize ?? 32;
  const dataCfg = isDs ? null : { batchSize, shuffle: o.shuffle ?? true, seed: o.seed ?? 0 };
  let train: Dataset;
  let val: Dataset | null = null;
  const owned: Tensor[] = [];
  let resumed: ReadCheckpoint | null = null;
  const callbacks = o.callbacks ?? [];
  if (o.trainStep !== undefined && typeof o.trainStep !== 'function') throw new ArgumentError(`fit: trainStep must be a function (a TrainStep), got ${describe(o.trainStep)}`);
  const trainStep = o.trainStep ?? standardStep;
  const history: History = { epoch: [], history: {} };
  try {
    if (isDs) {
      train = x;
      if (o.validationSplit) throw new ArgumentError('validationSplit needs tensors; pass validationData with a Dataset');
    } else {
      const yt = y as Tensor | undefined;
      if (!yt) throw new ArgumentError('fit(x, y, options) needs targets y');
      assertTensor(yt, 'fit(x, y, options) needs the targets y as a Tensor');
      if (x.shape[0] !== yt.shape[0]) throw new ShapeError(`fit: x has ${x.shape[0]} samples but y has ${yt.shape[0]}`);
      let xt = x;
      let ytt = yt;
      if (o.validationSplit) {
        const n = x.shape[0];
        const nVal = Math.round(n * o.validationSplit);
        if (!(o.validationSplit > 0 && o.validationSplit < 1) || nVal < 1 || nVal >= n) throw new ArgumentError(`validationSplit ${o.validationSplit} leaves no training or no validation samples out of ${n}`);
        const idx = (a: number, b: number) => Int32Array.from({ length: b - a }, (_, i) => a + i);
        const [xa, ya] = takeRows([x, yt], idx(0, n - nVal));
        const [xb, yb] = takeRows([x, yt], idx(n - nVal, n));
        owned.push(xa, ya, xb, yb);
        xt = xa;
        ytt = ya;
        val = Dataset.fromTensors(xb, yb, { batchSize });
      }
      train = Dataset.fromTensors(xt, ytt, { batchSize, shuffle: dataCfg!.shuffle, seed: dataCfg!.seed });
    }
    if (o.validationData) {
      val = o.validationData instanceof Dataset ? o.validationData : Dataset.fromTensors(o.validationData[0], o.validationData[1], { batchSize });
    }
    if (o.resumeFrom !== undefined) resumed = await readCheckpoint(o.resumeFrom, { model, optimizer: c.optimizer });

    // Where the run stands (what a checkpoint taken now resumes from): epochs and batches done.
    let done = { epoch: o.initialEpoch ?? 0, batch: 0 };
    let meter = new Meter();
    const ctx: TrainingContext = {
      model, optimizer: c.optimizer, stopTraining: false, epochs, batchesPerEpoch: train.size, epoch: done.epoch, step: 0,
      trainingState: () => {
        const tensors: Record<string, Tensor> = {};
        const states = callbacks.map((cb, i) => {
          const st = cb.stateDict();
          if (!st) return null;
          for (const [k, t] of Object.entries(st.tensors ?? {})) tensors[`callbacks.${i}.${k}`] = t;
          return { className: cb.constructor.name, values: st.values };
        });
        const state = captureTrainingState(model, {
          epoch: done.epoch, batch: done.batch, step: ctx.step, stopped: ctx.stopTraining, history, data: dataCfg, callbacks: states,
          meter: done.batch > 0 ? { sums: { ...meter.sums }, count: meter.count } : null,
        });
        return { state, tensors };
      },
    };
    for (const cb of callbacks) cb.setContext(ctx);
    const progress = await Progress.create(o.verbose ?? 1);
    const params = model.trainableParameters();
    for (const cb of callbacks) await cb.onTrainBegin({});
    if (resumed) {
      const st = resumed.state;
      restoreCallbacks(callbacks, st.callbacks, resumed.tensors);
      if (st.batch > 0 && !isDs && (st.data?.batchSize !== dataCfg!.batchSize || st.data.shuffle !== dataCfg!.shuffle || st.data.seed !== dataCfg!.seed)) {
        throw new ArgumentError(`resuming inside an epoch needs the checkpointed run's batching (${JSON.stringify(st.data)}), got ${JSON.stringify(dataCfg)}`);
      }
      history.epoch.push(...st.history.epoch);
      Object.assign(history.history, st.history.history);
      done = { epoch: st.epoch, batch: st.batch };
      if (st.meter) Object.assign(meter, { sums: st.meter.sums, count: st.meter.count });
      ctx.step = st.step;
      ctx.stopTraining = st.stopped;
      // Last, so nothing between here and the first batch draws from the restored stream.
      setRngState(st.rng);
    }
    for (let epoch = done.epoch; epoch < epochs && !ctx.stopTraining; epoch++) {
      // The first epoch of a resumed run may start mid-way: its onEpochBegin ran before the checkpoint.
      const skip = epoch === done.epoch ? done.batch : 0;
      ctx.epoch = epoch;
      model.train();
      if (skip === 0) {
        meter = new Meter();
        for (const cb of callbacks) await cb.onEpochBegin(epoch);
      }
      progress?.epochBegin(epoch, epochs, train.size);
      let batch = skip;
      for await (const b of train.batches(epoch, skip)) {
        for (const cb of callbacks) await cb.onBatchBegin(batch);
        let values: Record<string, number>;
        try {
          values = tidy(() => {
            if (!b.y) throw new ArgumentError('training batches need targets');
            const { loss, pred } = trainStep({
              model, optimizer: c.optimizer, loss: c.loss, x: b.x, y: b.y, params, clipGradNorm: c.clipNorm, clipGradValue: c.clipValue,
              epoch, step: ctx.step, epochs, batchesPerEpoch: train.size,
            });
            const v: Record<string, number> = { loss: loss.item() };
            if (b.x.shape[0] > 0) {
              noGrad(() => {
                for (const m of c.metrics) v[m.name] = m.fn(pred.detach(), b.y!).item();
              });
            }
            return v;
          });
        } finally {
          b.x.dispose();
          b.y?.dispose();
        }
        ctx.step++;
        meter.add(values, b.x.shape[0]);
        done = { epoch, batch: batch + 1 };
        const logs = meter.means();
        progress?.batchEnd(batch, logs);
        for (const cb of callbacks) await cb.onBatchEnd(batch, logs);
        for (const cb of callbacks) await cb.afterBatchEnd(batch, logs);
        batch++;
      }
      const logs: Logs = meter.means();
      if (val) Object.assign(logs, await runEvaluation(model, c, val, 'val_'));
      for (const cb of callbacks) await cb.onEpochEnd(epoch, logs);
      progress?.epochEnd(epoch, epochs, logs);
      history.epoch.push(epoch);
      for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
      done = { epoch: epoch + 1, batch: 0 };
      for (const cb of callbacks) await cb.afterEpochEnd(epoch, logs);
      // Let the host breathe between epochs (UI in browsers, I/O in Node).
      await new Promise((r) => setTimeout(r, 0));
    }
    for (const cb of callbacks) await cb.onTrainEnd({});
  } finally {
    for (const t of owned) t.dispose();
    if (resumed) for (const t of Object.values(resumed.tensors)) t.dispose();
  }
  return history;
}

/** Hands each callback its checkpointed state (callbacks match by position and class). */
function restoreCallbacks(callbacks: Callback[], states: TrainingState['callbacks'], tensors: Record<string, Tensor>): void {
  states.forEach((s, i) => {
    if (!s) return;
    const cb = callbacks[i];
    if (!cb || cb.constructor.name !== s.className) {
      throw new ArgumentError(`the checkpoint holds the state of callback #${i} (${s.className.slice(0, 60)}), but fit's callback #${i} is ${cb ? cb.constructor.name : 'missing'}: pass the same callbacks in the same order`);
    }
    const prefix = `callbacks.${i}.`;
    const own = Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
    try {
      cb.loadStateDict({ values: s.values, tensors: own });
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(`checkpoint state of callback #${i} (${s.className.slice(0, 60)}): ${(e as Error).message}`);
    }
  });
}

async function evaluate(model: Module, x: Tensor | Dataset, y?: Tensor, o: { batchSize?: number } = {}): Promise<Logs> {
  const c = getCompiled(model);
  o = checkOptions(o, 'evaluate options');
  if (!(x instanceof Dataset)) assertTensor(x, 'evaluate(x, y) needs x as a Tensor or a Dataset');
  const data = x instanceof Dataset ? x : Dataset.fromTensors(x, y, { batchSize: o.batchSize ?? 32 });
  return runEvaluation(model, c, data, '');
}

function predict(model: Module, x: Tensor, o: { batchSize?: number } = {}): Tensor {
  assertTensor(x, 'predict() needs a Tensor of inputs');
  if (x.rank === 0) throw new ShapeError('predict() needs inputs with a leading batch dimension, got a scalar');
  const bs = checkOptions(o ?? undefined, 'predict options').batchSize ?? 32;
  if (!Number.isInteger(bs) || bs < 1) throw new ArgumentError(`batchSize must be a positive integer, got ${describe(bs)}`);
  const wasTraining = model.training;
  model.eval();
  try {
    return tidy(() => noGrad(() => {
      const n = x.shape[0];
      if (n === 0) {
        // Zero rows: an empty result of the model's output shape, found from one zero row (not
        // every op of every model runs on empty tensors).
        const probe = model.forward(zeros([1, ...x.shape.slice(1)], x.dtype));
        return zeros([0, ...probe.shape.slice(1)], probe.dtype);
      }
      const outs: Tensor[] = [];
      for (let s = 0; s < n; s += bs) {
        const e = Math.min(s + bs, n);
        outs.push(model.forward(x.slice([s, ...x.shape.slice(1).map(() => 0)], [e, ...x.shape.slice(1)])));
      }
      return outs.length === 1 ? outs[0] : concat(outs, 0);
    }));
  } finally {
    model.train(wasTraining);
  }
}

setTrainingImpl({ compile, fit, evaluate, predict });
