/**
 * Knowledge distillation (Hinton, Vinyals & Dean 2015): a student learns from a teacher's
 * temperature-softened outputs mixed with the hard labels,
 * `loss = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 - α) · CE(s, y)`,
 * optionally with hint (feature) matching (FitNets, Romero et al. 2015): a learned 1x1 conv or
 * linear regressor maps a student layer's output onto a teacher layer's, with an MSE penalty.
 *
 * The teacher runs once over the training data (evaluation mode, no gradients); its logits and
 * hint features are then looked up per shuffled batch.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { noGrad } from '../autograd.js';
import { keep, tidy } from '../memory.js';
import { arange } from '../creation.js';
import { concat } from '../ops.js';
import { Dataset } from '../data.js';
import { klDivergence, mse, sparseCategoricalCrossEntropy } from '../losses.js';
import { assertTensor, type Tensor } from '../tensor.js';
import { checkOptions, describe } from '../args.js';
import { assertModule, type Module } from '../nn/module.js';
import * as nn from '../nn/layers.js';
import { Adam, type Optimizer } from '../optim/optimizers.js';
import { Progress } from '../train/progress.js';
import type { Logs } from '../train/callbacks.js';
import { rows } from './graph.js';

/** Options of the distillation loss: temperature T and the soft/hard mixing α. */
export interface DistillationLossOptions {
  /** Softening temperature T (default 4). */
  temperature?: number;
  /** Weight of the soft (teacher) term; 1 - alpha goes to the hard labels (default 0.9). */
  alpha?: number;
}

/** Hinton's loss for a batch of student and teacher logits and int32 labels. */
export function distillationLoss(student: Tensor, teacher: Tensor, labels: Tensor, o: DistillationLossOptions = {}): Tensor {
  assertTensor(student, 'distillationLoss needs the student logits as a Tensor');
  assertTensor(teacher, 'distillationLoss needs the teacher logits as a Tensor');
  assertTensor(labels, 'distillationLoss needs the labels as a Tensor');
  o = checkOptions(o, 'distillationLoss options');
  const T = o.temperature ?? 4;
  const alpha = o.alpha ?? 0.9;
  if (!(typeof T === 'number' && T > 0)) throw new ArgumentError(`temperature must be > 0, got ${describe(T)}`);
  if (!(typeof alpha === 'number' && alpha >= 0 && alpha <= 1)) throw new ArgumentError(`alpha must be in [0, 1], got ${describe(alpha)}`);
  if (student.shape.join() !== teacher.shape.join()) {
    throw new ShapeError(`distillation: student logits [${student.shape.join(', ')}] and teacher logits [${teacher.shape.join(', ')}] differ`);
  }
  return tidy(() => {
    const soft = klDivergence(student.mul(1 / T).logSoftmax(-1), teacher.mul(1 / T).softmax(-1), { logInput: true, reduction: 'batchmean' }).mul(T * T);
    if (alpha === 1) return soft;
    const hard = sparseCategoricalCrossEntropy(student, labels, { fromLogits: true });
    return soft.mul(alpha).add(hard.mul(1 - alpha));
  });
}

/** One FitNets hint: match a student layer's output to a teacher layer's through a learned 1x1 conv or linear regressor (MSE). */
export interface HintOptions {
  /** Index of the teacher's (Sequential) layer whose output is the hint. */
  teacherLayer: number;
  /** Index of the student's (Sequential) layer guided towards it through a learned regressor. */
  studentLayer: number;
  /** Weight of the hint's MSE term (default 1). */
  weight?: number;
}

/** Options of `distill`: the models, training schedule and loss settings. */
export interface DistillOptions extends DistillationLossOptions {
  /** The trained teacher; run once in evaluation mode without gradients. */
  teacher: Module;
  /** The model being trained; updated in place. */
  student: Module;
  /** Training epochs (default 10). */
  epochs?: number;
  /** Samples per batch (default 32). */
  batchSize?: number;
  /** Seed of the per-epoch shuffles (default 0). */
  seed?: number;
  /** Default: Adam over the student's (and hint regressors') trainable parameters with `lr`. */
  optimizer?: Optimizer;
  /** Learning rate of the default Adam optimizer (default 1e-3); ignored when `optimizer` is given. */
  lr?: number;
  /** Called after every epoch (an LR scheduler's `step`, ...). */
  onEpochEnd?: (epoch: number, logs: Logs) => void;
  /** FitNets hint pairs, each adding a weighted MSE term ({@link HintOptions}). */
  hints?: HintOptions[];
  /**
   * Transforms each training batch (data augmentation). The teacher then labels the augmented
   * batch itself ("consistent teaching", Beyer et al. 2022) instead of the stored logits; hints
   * need no augmentation. Called as `augment(x, epoch, batch)`; return a new tensor.
   */
  augment?: (x: Tensor, epoch: number, batch: number) => Tensor;
  /** Held-out data: `val_accuracy` is reported per epoch. */
  validationData?: [Tensor, Tensor];
  /** 0 silent, 1 progress bar in a terminal (log lines elsewhere), 2 one line per epoch. */
  verbose?: 0 | 1 | 2;
}

/** What `distill` returns: per-epoch logs, like `fit`'s `History`. */
export interface DistillHistory {
  /** The epoch indices that ran. */
  epoch: number[];
  /** Each logged value (loss terms, validation metrics) with one value per epoch. */
  history: Record<string, number[]>;
}

/** Outputs of the given top-level layers of a Sequential (and its final output). */
function forwardCapture(m: Module, x: Tensor, at: number[]): { out: Tensor; feats: Map<number, Tensor> } {
  const feats = new Map<number, Tensor>();
  if (at.length === 0) return { out: m.forward(x), feats };
  if (!(m instanceof nn.Sequential)) throw new ArgumentError('hints need Sequential teacher and student models (layers are picked by index)');
  let h = x;
  m.layers.forEach((l, i) => {
    h = l.forward(h);
    if (at.includes(i)) feats.set(i, h);
  });
  return { out: h, feats };
}

function accuracy(logits: Tensor, y: Tensor): number {
  return tidy(() => logits.argMax(-1).cast('float32').equal(y.cast('float32')).mean().item());
}

/** Trains `student` to mimic `teacher` on `(x, y)` (int32 labels). Resolves to the history. */
export async function distill(x: Tensor, y: Tensor, o: DistillOptions): Promise<DistillHistory> {
  assertTensor(x, 'distill needs the inputs as a Tensor');
  assertTensor(y, 'distill needs the labels as a Tensor');
  if (o === null || typeof o !== 'object') throw new ArgumentError(`distill needs options { teacher, student, ... }, got ${describe(o)}`);
  const { teacher, student } = o;
  assertModule(teacher, 'distill: options.teacher');
  assertModule(student, 'distill: options.student');
  if (o.hints !== undefined && !Array.isArray(o.hints)) throw new ArgumentError(`distill: options.hints must be an array, got ${describe(o.hints)}`);
  const epochs = o.epochs ?? 10;
  const bs = o.batchSize ?? 32;
  if (!Number.isInteger(epochs) || epochs < 1) throw new ArgumentError(`epochs must be a positive integer, got ${describe(epochs)}`);
  if (y.dtype !== 'int32' || y.rank !== 1 || y.shape[0] !== x.shape[0]) throw new ShapeError(`distill: labels must be int32 [${x.shape[0]}], got ${y.dtype} [${y.shape.join(', ')}]`);
  const hints = o.hints ?? [];
  if (o.augment && hints.length) throw new ArgumentError('distill: hints are precomputed on the unaugmented inputs, so they cannot be combined with augment');
  const n = x.shape[0];
  const owned: Tensor[] = [];
  const regressors: Module[] = [];
  const ownedOptimizers: Optimizer[] = [];
  const progress = await Progress.create(o.verbose ?? 0);
  const teacherWasTraining = teacher.training;
  teacher.eval();
  try {
    // The teacher's logits and hint features for every training sample.
    const tAt = hints.map((h) => h.teacherLayer);
    const tLogits: Tensor[] = [];
    const tFeats: Tensor[][] = hints.map(() => []);
    for (let s = 0; s < n; s += 256) {
      const r = tidy(() => noGrad(() => {
        const c = forwardCapture(teacher, rows(x, s, Math.min(s + 256, n)), tAt);
        return [c.out, ...hints.map((h) => {
          const f = c.feats.get(h.teacherLayer)!;
          return f === c.out ? f.clone() : f;
        })];
      }));
      tLogits.push(r[0]);
      hints.forEach((_, i) => tFeats[i].push(r[1 + i]));
    }
    const cat = (ts: Tensor[]) => {
      const c = keep(ts.length === 1 ? ts[0] : concat(ts, 0));
      if (ts.length > 1) ts.forEach((t) => t.dispose());
      owned.push(c);
      return c;
    };
    const teacherLogits = cat(tLogits);
    const teacherFeats = tFeats.map(cat);
    // Regressors from student to teacher features.
    const sShapes = hints.length ? tidy(() => noGrad(() => {
      const wasTraining = student.training;
      student.eval();
      const r = forwardCapture(student, rows(x, 0, 1), hints.map((h) => h.studentLayer));
      student.train(wasTraining);
      return hints.map((h) => r.feats.get(h.studentLayer)!.shape.slice(1));
    })) : [];
    hints.forEach((h, i) => {
      const ss = sShapes[i];
      const ts = teacherFeats[i].shape.slice(1);
      if (ss.length !== ts.length || ss.slice(0, -1).join() !== ts.slice(0, -1).join()) {
        throw new ShapeError(`hint ${i}: student layer ${h.studentLayer} gives [${ss.join(', ')}] but teacher layer ${h.teacherLayer} gives [${ts.join(', ')}]; they may differ only in channels`);
      }
      const cs = ss[ss.length - 1];
      const ct = ts[ts.length - 1];
      regressors.push(ss.length === 3 ? new nn.Conv2d(cs, ct, 1, { seed: 1000 + i }) : new nn.Linear(cs, ct, { seed: 1000 + i }));
    });
    const regParams = regressors.flatMap((r) => r.parameters());
    const optimizer = o.optimizer ?? new Adam([...student.trainableParameters(), ...regParams], { lr: o.lr ?? 1e-3 });
    // With a caller's optimizer, the hint regressors get their own (at its learning rate).
    const regOptimizer = o.optimizer && regParams.length ? new Adam(regParams, { lr: o.optimizer.lr }) : null;
    if (!o.optimizer) ownedOptimizers.push(optimizer);
    if (regOptimizer) ownedOptimizers.push(regOptimizer);
    const index = keep(arange(0, n, 1, 'int32'));
    owned.push(index);
    const ds = Dataset.fromTensors(x, index, { batchSize: bs, shuffle: true, seed: o.seed ?? 0 });
    const history: DistillHistory = { epoch: [], history: {} };
    const sAt = hints.map((h) => h.studentLayer);
    for (let epoch = 0; epoch < epochs; epoch++) {
      student.train();
      progress?.epochBegin(epoch, epochs, ds.size);
      let sums = { loss: 0, accuracy: 0 };
      let seen = 0;
      let batch = 0;
      for await (const b of ds.batches(epoch)) {
        try {
          const v = tidy(() => {
            const idx = b.y!;
            const yb = y.indexSelect(0, idx);
            const xb = o.augment ? o.augment(b.x, epoch, batch) : b.x;
            const tb = o.augment && o.alpha !== 0 ? noGrad(() => teacher.forward(xb)) : teacherLogits.indexSelect(0, idx);
            optimizer.zeroGrad();
            for (const r of regressors) for (const p of r.parameters()) p.zeroGrad();
            const r = forwardCapture(student, xb, sAt);
            let loss = distillationLoss(r.out, tb, yb, o);
            hints.forEach((h, i) => {
              const target = teacherFeats[i].indexSelect(0, idx);
              loss = loss.add(mse(regressors[i].forward(r.feats.get(h.studentLayer)!), target).mul(h.weight ?? 1));
            });
            const reg = student.regularizationLoss();
            (reg ? loss.add(reg) : loss).backward();
            optimizer.step();
            if (regOptimizer) {
              regOptimizer.lr = optimizer.lr;
              regOptimizer.step();
            }
            return { loss: loss.item(), accuracy: noGrad(() => accuracy(r.out.detach(), yb)) };
          });
          const m = b.x.shape[0];
          sums = { loss: sums.loss + v.loss * m, accuracy: sums.accuracy + v.accuracy * m };
          seen += m;
          progress?.batchEnd(batch, { loss: sums.loss / seen, accuracy: sums.accuracy / seen });
          batch++;
        } finally {
          b.x.dispose();
          b.y?.dispose();
        }
      }
      const logs: Logs = { loss: sums.loss / seen, accuracy: sums.accuracy / seen };
      if (o.validationData) {
        student.eval();
        logs.val_accuracy = evalAccuracy(student, o.validationData[0], o.validationData[1]);
        student.train();
      }
      o.onEpochEnd?.(epoch, logs);
      progress?.epochEnd(epoch, epochs, logs);
      history.epoch.push(epoch);
      for (const [k, v] of Object.entries(logs)) (history.history[k] ??= []).push(v);
      await new Promise((r) => setTimeout(r, 0));
    }
    student.eval();
    return history;
  } finally {
    for (const t of owned) t.dispose();
    for (const r of regressors) r.dispose();
    for (const op of ownedOptimizers) op.dispose();
    teacher.train(teacherWasTraining);
  }
}


/** Accuracy of a classifier on `(x, y)` (int32 labels), in batches, evaluation mode. */
export function evalAccuracy(model: Module | { predict(x: Tensor, o?: { batchSize?: number }): Tensor }, x: Tensor, y: Tensor, batchSize = 256): number {
  if (model === null || typeof model !== 'object' || typeof model.predict !== 'function') {
    throw new ArgumentError(`evalAccuracy needs a model with predict(), got ${describe(model)}`);
  }
  assertTensor(x, 'evalAccuracy needs the inputs as a Tensor');
  assertTensor(y, 'evalAccuracy needs the labels as a Tensor');
  return tidy(() => noGrad(() => accuracy(model.predict(x, { batchSize }), y)));
}
