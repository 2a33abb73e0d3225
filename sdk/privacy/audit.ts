/**
 * Measuring privacy instead of only claiming it (issue 16 §4):
 * - `membershipInference`: does the model tell its training examples from others? The loss-threshold
 *   attack (Yeom et al. 2018) and the shadow-model attack (Shokri et al. 2017), scored as ROC AUC,
 *   TPR at low FPR and the membership advantage, with the ROC points for a chart.
 * - `oneRunAudit` / `oneRunEpsilonBound`: an empirical lower bound on ε from a single training run
 *   with canaries (Steinke, Nasr & Jagielski 2023). A sound DP guarantee is never below it (at the
 *   stated confidence), so a bound above the accountant's ε exposes a broken implementation.
 *
 * Model outputs and losses are computed in engine ops; the statistics over the scores (sorting, ROC,
 * binomial tails) are plain float64 JavaScript, the same in every runtime.
 */
import { checkFunction, checkInt, checkNumber, checkObject, checkOptions, checkSize, describe } from '../args.js';
import { noGrad } from '../autograd.js';
import { arange, bernoulli, randperm, tensor } from '../creation.js';
import { ArgumentError, DTypeError, ShapeError } from '../errors.js';
import { binaryCrossEntropy, sparseCategoricalCrossEntropy, type LossFn } from '../losses.js';
import { dispose, tidy } from '../memory.js';
import { Linear, ReLU, Sequential } from '../nn/layers.js';
import { assertModule, Module } from '../nn/module.js';
import { concat } from '../ops.js';
import { Adam } from '../optim/optimizers.js';
import { Tensor } from '../tensor.js';

/** Examples and their labels: `x` `[n, ...]`, `y` `[n]` (class indices, or 0/1 floats for one-logit models). */
export interface LabeledData {
  /** Examples `[n, ...]`. */
  x: Tensor;
  /** Labels `[n]`: class indices, or 0/1 floats for one-logit models. */
  y: Tensor;
}

/** How a model's outputs are turned into per-example losses (shared by both auditing tools). */
export interface ScoringOptions {
  /**
   * Per-example loss `[n]` of the model's outputs and the labels. Default: cross-entropy — sparse
   * categorical for `[n, classes]` outputs with int32 labels, binary for `[n, 1]` or `[n]` outputs
   * with 0/1 float labels.
   */
  loss?: LossFn;
  /** Whether the outputs are logits (default true) or probabilities; for the default loss and the shadow features. */
  fromLogits?: boolean;
  /** Batch size of the model's forward passes (default 256). */
  batchSize?: number;
}

/** Options of the shadow-model attack. */
export interface ShadowOptions {
  /** Data from the target's distribution, disjoint from the target's training set; each shadow trains on a random half. */
  data: LabeledData;
  /**
   * Trains one shadow model the way the target was trained, on `x`, `y` (borrowed for the call),
   * and returns it; `index` numbers the shadows (for seeds). Each shadow is disposed once scored.
   */
  train: (x: Tensor, y: Tensor, index: number) => Module | Promise<Module>;
  /** Number of shadow models (default 4). */
  numShadows?: number;
  /** Epochs of the attack classifier (default 100). */
  attackEpochs?: number;
}

/** Options of `membershipInference`. */
export interface MembershipInferenceOptions extends ScoringOptions {
  /** Examples the model was trained on. */
  members: LabeledData;
  /** Examples from the same distribution that it never saw. */
  nonMembers: LabeledData;
  /** `'loss'` (default): lower loss means member. `'shadow'`: an attack classifier trained on shadow models. */
  attack?: 'loss' | 'shadow';
  /** Required for `attack: 'shadow'`. */
  shadow?: ShadowOptions;
  /** False-positive rates at which the TPR is reported (default [0.001, 0.01]). */
  fprs?: number[];
  /** Seed of the shadow splits and of the attack classifier (default 0). */
  seed?: number;
}

/** A ROC curve over membership scores (higher = more likely a member). */
export interface RocCurve {
  /** False-positive rates, rising from 0 to 1 (one point per distinct score, and (0, 0) first). */
  fpr: Float64Array;
  /** True-positive rates at the same points. */
  tpr: Float64Array;
  /** The score at or above which an example is called a member, per point (+Infinity first). */
  thresholds: Float64Array;
  /** Area under the curve: P(member score > non-member score) + ½·P(equal). */
  auc: number;
}

/** What `membershipInference` returns. */
export interface MembershipInferenceResult {
  /** Which attack produced the scores: `'loss'` (Yeom et al. loss threshold) or `'shadow'` (shadow models). */
  attack: 'loss' | 'shadow';
  /** ROC AUC: 0.5 is guessing, 1 is perfect membership inference. */
  auc: number;
  /** The highest TPR at an FPR no larger than each requested rate. */
  tprAtFpr: {
    /** The requested false-positive rate. */
    fpr: number;
    /** The true-positive rate reached at it. */
    tpr: number;
  }[];
  /** max(TPR − FPR) over thresholds: Yeom et al.'s membership advantage. */
  advantage: number;
  /** The full ROC curve of the membership scores. */
  roc: RocCurve;
  /** The membership score of every example (higher = more likely a member). */
  scores: {
    /** Scores of the training (member) examples. */
    members: Float32Array;
    /** Scores of the held-out (non-member) examples. */
    nonMembers: Float32Array;
  };
}

function checkData(v: unknown, what: string): LabeledData {
  const d = checkObject<Record<string, unknown>>(v, what, 'an object { x, y } of Tensors');
  for (const k of ['x', 'y']) {
    const t = d[k];
    if (!(t instanceof Tensor)) throw new ArgumentError(`${what}.${k} must be a Tensor, got ${describe(t)}`);
    if (t.isDisposed) throw new ArgumentError(`${what}.${k} is a disposed Tensor`);
    if (t.rank < 1) throw new ShapeError(`${what}.${k} needs a leading example dimension, got a scalar`);
  }
  const { x, y } = d as unknown as LabeledData;
  if (x.shape[0] !== y.shape[0]) throw new ShapeError(`${what}: x has ${x.shape[0]} examples but y has ${y.shape[0]} labels`);
  if (x.shape[0] === 0) throw new ShapeError(`${what} has no examples`);
  return { x, y };
}

function checkScoring(o: ScoringOptions, what: string): Required<Pick<ScoringOptions, 'fromLogits' | 'batchSize'>> & { loss?: LossFn } {
  if (o.loss !== undefined) checkFunction(o.loss, `${what}: loss`);
  if (o.fromLogits !== undefined && typeof o.fromLogits !== 'boolean') throw new ArgumentError(`${what}: fromLogits must be a boolean, got ${describe(o.fromLogits)}`);
  const batchSize = o.batchSize === undefined ? 256 : checkInt(o.batchSize, `${what}: batchSize`, 1);
  return { loss: o.loss, fromLogits: o.fromLogits ?? true, batchSize };
}

/** The model's outputs on `d.x` in evaluation mode, without gradients (caller's scope). */
function outputs(model: Module, d: LabeledData, batchSize: number, what: string): Tensor {
  const out = model.predict(d.x, { batchSize });
  if (!(out instanceof Tensor) || out.dtype !== 'float32' || out.rank < 1 || out.shape[0] !== d.x.shape[0]) {
    dispose(out);
    throw new ShapeError(`${what}: the model must return float32 outputs with one row per example, got ${out instanceof Tensor ? `${out.dtype} [${out.shape.join(', ')}]` : describe(out)}`);
  }
  return out;
}

/** Whether outputs are one logit (or probability) per example. */
const isBinary = (out: Tensor): boolean => out.rank === 1 || (out.rank === 2 && out.shape[1] === 1);

function defaultLoss(out: Tensor, y: Tensor, fromLogits: boolean, what: string): Tensor {
  const n = out.shape[0];
  if (isBinary(out)) {
    if (y.dtype !== 'float32' || y.size !== n) throw new DTypeError(`${what}: a model with one output per example needs float32 0/1 labels [n], got ${y.dtype} [${y.shape.join(', ')}]`);
    return binaryCrossEntropy(out.reshape([n]), y.reshape([n]), { fromLogits, reduction: 'none' });
  }
  if (out.rank !== 2) throw new ShapeError(`${what}: the default loss needs outputs [n, classes] or [n, 1], got [${out.shape.join(', ')}]; pass a per-example loss`);
  if (y.dtype !== 'int32' || y.rank !== 1) throw new DTypeError(`${what}: class scores need int32 labels [n], got ${y.dtype} [${y.shape.join(', ')}]`);
  return sparseCategoricalCrossEntropy(out, y, { fromLogits, reduction: 'none' });
}

/** Checked per-example values `[n]` as float32 (NaN refused: it would make every ranking meaningless). */
function perExample(t: unknown, n: number, what: string): Float32Array {
  let v: ArrayLike<number>;
  if (t instanceof Tensor) {
    if (t.size !== n) throw new ShapeError(`${what} must give one value per example (${n}), got [${t.shape.join(', ')}]`);
    v = t.dataSync();
  } else if (Array.isArray(t) || t instanceof Float32Array || t instanceof Float64Array) {
    v = t as ArrayLike<number>;
    if (v.length !== n) throw new ShapeError(`${what} must give one value per example (${n}), got ${v.length}`);
  } else {
    throw new ArgumentError(`${what} must return a Tensor or an array of numbers, got ${describe(t)}`);
  }
  const out = Float32Array.from(v as ArrayLike<number>);
  const bad = out.findIndex((x) => Number.isNaN(x));
  if (bad >= 0) throw new ArgumentError(`${what} is NaN for example ${bad}`);
  return out;
}

/**
 * Each example's log-odds of its own label, log(p_y / (1 − p_y)) = z_y − logsumexp_{j≠y} z_j: a
 * decreasing function of its cross-entropy loss, so ranking by it is ranking by the loss, but it
 * stays distinct where a confident model's float32 losses all round to 0 (and would tie).
 */
function logOdds(out: Tensor, y: Tensor, fromLogits: boolean, what: string): Tensor {
  defaultLoss(out, y, fromLogits, what).dispose(); // the same shape, dtype and label checks as the loss
  const n = out.shape[0];
  if (isBinary(out)) {
    const z = fromLogits ? out.reshape([n]) : out.reshape([n]).clamp(1e-30, 1 - 1e-7).log().sub(out.reshape([n]).neg().add(1).clamp(1e-30, 1).log());
    return z.mul(y.reshape([n]).greater(0.5).mul(2).sub(1));
  }
  const c = out.shape[1];
  const labels = y.dataSync() as Int32Array;
  const bad = labels.findIndex((v) => v < 0 || v >= c);
  if (bad >= 0) throw new ArgumentError(`${what}: label ${labels[bad]} of example ${bad} is not one of the model's ${c} classes`);
  const logp = fromLogits ? out.logSoftmax(-1) : out.clamp(1e-30, 1).log();
  const onehot = arange(0, c).reshape([1, c]).equal(y.cast('float32').reshape([n, 1]));
  const own = logp.mul(onehot).sum(1);
  // log(1 − p_y) = logsumexp over the other classes (the label's entry pushed to -1e30).
  const others = logp.sub(onehot.mul(1e30));
  const m = others.max(1, true);
  return own.sub(others.sub(m).exp().sum(1).log().add(m.reshape([n])));
}

/**
 * Membership scores of `model` on `d`, higher = more likely a member: the log-odds of the true label
 * (the default loss's order), or the negated per-example `loss` when one is given.
 */
function memberScores(model: Module, d: LabeledData, o: ReturnType<typeof checkScoring>, what: string): Float32Array {
  return noGrad(() => tidy(() => {
    const out = outputs(model, d, o.batchSize, what);
    if (!o.loss) return perExample(logOdds(out, d.y, o.fromLogits, what), d.x.shape[0], `${what}: the log-odds`);
    return perExample(o.loss(out, d.y), d.x.shape[0], `${what}: the per-example loss`).map((v) => -v);
  }));
}

/**
 * Attack features of each example from the model's outputs: its log-probabilities sorted from the
 * largest (at most 3) and the log-probability of its own label — the output vector Shokri et al.'s
 * attack reads, with the label folded in as a feature instead of one attack model per class.
 */
function shadowFeatures(model: Module, d: LabeledData, o: ReturnType<typeof checkScoring>, what: string): { feats: Float32Array; width: number } {
  return noGrad(() => tidy(() => {
    const out = outputs(model, d, o.batchSize, what);
    const n = out.shape[0];
    let logp: Tensor;
    let label: Tensor;
    if (isBinary(out)) {
      const z = out.reshape([n, 1]);
      // log σ(z) = -softplus(-z), log(1 - σ(z)) = -softplus(z).
      logp = o.fromLogits ? concat([z.neg().softplus().neg(), z.softplus().neg()], 1) : concat([z.clamp(1e-30, 1).log(), z.neg().add(1).clamp(1e-30, 1).log()], 1);
      label = d.y.reshape([n]).greater(0.5).cast('int32');
    } else {
      if (out.rank !== 2) throw new ShapeError(`${what}: shadow features need outputs [n, classes] or [n, 1], got [${out.shape.join(', ')}]`);
      logp = o.fromLogits ? out.logSoftmax(-1) : out.clamp(1e-30, 1).log();
      if (d.y.dtype !== 'int32' || d.y.rank !== 1) throw new DTypeError(`${what}: class scores need int32 labels [n], got ${d.y.dtype} [${d.y.shape.join(', ')}]`);
      label = d.y;
    }
    const c = logp.shape[1];
    const labels = label.dataSync() as Int32Array;
    const bad = labels.findIndex((v) => v < 0 || v >= c);
    if (bad >= 0) throw new ArgumentError(`${what}: label ${labels[bad]} of example ${bad} is not one of the model's ${c} classes`);
    const lp = logp.clamp(-100, 0).dataSync() as Float32Array;
    const k = Math.min(3, c);
    const width = k + 1;
    const feats = new Float32Array(n * width);
    for (let i = 0; i < n; i++) {
      const row = lp.slice(i * c, (i + 1) * c).sort().reverse();
      feats.set(row.subarray(0, k), i * width);
      feats[i * width + k] = lp[i * c + labels[i]];
    }
    return { feats, width };
  }));
}

/**
 * The ROC curve of membership scores: members are the positives. One point per distinct score
 * (ties move together), so the trapezoid area is exactly P(member > non-member) + ½·P(tie).
 */
export function rocCurve(memberScores: ArrayLike<number>, nonMemberScores: ArrayLike<number>): RocCurve {
  const pos = scoresArg(memberScores, 'rocCurve: member scores');
  const neg = scoresArg(nonMemberScores, 'rocCurve: non-member scores');
  const all = [...Array.from(pos, (s) => [s, 1] as const), ...Array.from(neg, (s) => [s, 0] as const)];
  // Highest score first (a comparison, not a difference: ±Infinity scores are allowed).
  all.sort((a, b) => (a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0));
  const fpr = [0];
  const tpr = [0];
  const thresholds = [Infinity];
  let tp = 0;
  let fp = 0;
  let auc = 0;
  for (let i = 0; i < all.length;) {
    const s = all[i][0];
    const fp0 = fp;
    const tp0 = tp;
    for (; i < all.length && all[i][0] === s; i++) all[i][1] ? tp++ : fp++;
    // Trapezoid between the previous point and this one (a tie block counts half).
    auc += ((fp - fp0) * (tp + tp0)) / 2;
    fpr.push(fp / neg.length);
    tpr.push(tp / pos.length);
    thresholds.push(s);
  }
  return { fpr: Float64Array.from(fpr), tpr: Float64Array.from(tpr), thresholds: Float64Array.from(thresholds), auc: auc / (pos.length * neg.length) };
}

function scoresArg(v: unknown, what: string): Float64Array {
  if (!(Array.isArray(v) || v instanceof Float32Array || v instanceof Float64Array)) throw new ArgumentError(`${what} must be an array of numbers, got ${describe(v)}`);
  const raw = Array.from(v as ArrayLike<unknown>);
  if (raw.length === 0) throw new ArgumentError(`${what} are empty`);
  const bad = raw.findIndex((x) => typeof x !== 'number' || Number.isNaN(x));
  if (bad >= 0) throw new ArgumentError(`${what} must be numbers (not NaN); entry ${bad} is ${describe(raw[bad])}`);
  return Float64Array.from(raw as number[]);
}

/** The summary numbers of a ROC curve. */
function summarize(roc: RocCurve, fprs: number[]): Pick<MembershipInferenceResult, 'auc' | 'tprAtFpr' | 'advantage'> {
  let advantage = 0;
  for (let i = 0; i < roc.fpr.length; i++) advantage = Math.max(advantage, roc.tpr[i] - roc.fpr[i]);
  const tprAtFpr = fprs.map((f) => {
    let best = 0;
    for (let i = 0; i < roc.fpr.length; i++) if (roc.fpr[i] <= f) best = Math.max(best, roc.tpr[i]);
    return { fpr: f, tpr: best };
  });
  return { auc: roc.auc, tprAtFpr, advantage };
}

/**
 * Membership inference against `model` on its training examples (`members`) and held-out examples
 * of the same distribution (`nonMembers`). `attack: 'loss'` (Yeom et al.) ranks the examples by
 * their loss, lowest first (scored by the log-odds of the true label: the same order, without
 * float32 ties at zero loss; by the negated `loss` when you pass one). `attack: 'shadow'` (Shokri et
 * al.) trains `shadow.numShadows` models like the target on random halves of `shadow.data` (through
 * your `shadow.train`), fits an attack classifier (a small MLP, with `fit`) that tells their training
 * halves from the other halves by the output vector, and scores the target's examples with it.
 * Returns ROC AUC, TPR at low FPR, the membership advantage and the ROC points. An (ε, δ)-DP model
 * caps every attack at TPR ≤ e^ε·FPR + δ.
 */
export async function membershipInference(model: Module, opts: MembershipInferenceOptions): Promise<MembershipInferenceResult> {
  assertModule(model, 'membershipInference');
  const o = checkOptions(opts, 'membershipInference options');
  const what = 'membershipInference';
  const members = checkData(o.members, `${what}: members`);
  const nonMembers = checkData(o.nonMembers, `${what}: nonMembers`);
  const lo = checkScoring(o, what);
  const attack = o.attack ?? 'loss';
  if (attack !== 'loss' && attack !== 'shadow') throw new ArgumentError(`${what}: attack must be 'loss' or 'shadow', got ${describe(attack)}`);
  const fprs = o.fprs ?? [0.001, 0.01];
  if (!Array.isArray(fprs) || fprs.some((f) => typeof f !== 'number' || !(f >= 0 && f <= 1))) throw new ArgumentError(`${what}: fprs must be an array of rates in [0, 1], got ${describe(fprs)}`);
  const seed = o.seed === undefined ? 0 : checkInt(o.seed, `${what}: seed`, 0);
  let scores: { members: Float32Array; nonMembers: Float32Array };
  if (attack === 'loss') {
    scores = { members: memberScores(model, members, lo, `${what} (members)`), nonMembers: memberScores(model, nonMembers, lo, `${what} (nonMembers)`) };
  } else {
    if (o.shadow === undefined) throw new ArgumentError(`${what}: attack 'shadow' needs shadow: { data, train }`);
    scores = await shadowAttack(model, members, nonMembers, o.shadow, lo, seed);
  }
  const roc = rocCurve(scores.members, scores.nonMembers);
  return { attack, ...summarize(roc, fprs), roc, scores };
}

async function shadowAttack(model: Module, members: LabeledData, nonMembers: LabeledData, shadowOpts: ShadowOptions, lo: ReturnType<typeof checkScoring>, seed: number): Promise<{ members: Float32Array; nonMembers: Float32Array }> {
  const what = 'membershipInference (shadow)';
  const s = checkOptions(checkObject<ShadowOptions>(shadowOpts, `${what}: shadow`, 'an object { data, train }'), `${what}: shadow`);
  const data = checkData(s.data, `${what}: shadow.data`);
  const train = checkFunction<ShadowOptions['train']>(s.train, `${what}: shadow.train`);
  const k = s.numShadows === undefined ? 4 : checkInt(s.numShadows, `${what}: shadow.numShadows`, 1, 1000);
  const epochs = s.attackEpochs === undefined ? 100 : checkInt(s.attackEpochs, `${what}: shadow.attackEpochs`, 1, 100_000);
  const n = data.x.shape[0];
  if (n < 4) throw new ShapeError(`${what}: shadow.data needs at least 4 examples, got ${n}`);
  const half = Math.floor(n / 2);
  const feats: Float32Array[] = [];
  const labels: number[] = [];
  let width = 0;
  for (let i = 0; i < k; i++) {
    // Each shadow trains on a random half ("in") and is queried on both halves.
    const [inData, outData] = tidy(() => {
      const perm = randperm(n, { seed: seed * 1000 + i });
      const pick = (a: number, b: number): LabeledData => {
        const idx = perm.slice([a], [b]);
        return { x: data.x.indexSelect(0, idx), y: data.y.indexSelect(0, idx) };
      };
      return [pick(0, half), pick(half, n)];
    });
    let shadow: unknown;
    try {
      shadow = await train(inData.x, inData.y, i);
      assertModule(shadow, `${what}: shadow.train must return a Module; it`);
      for (const [d, member] of [[inData, 1], [outData, 0]] as const) {
        const f = shadowFeatures(shadow, d, lo, `${what}: shadow ${i}`);
        width = f.width;
        feats.push(f.feats);
        for (let j = 0; j < d.x.shape[0]; j++) labels.push(member);
      }
    } finally {
      dispose([inData.x, inData.y, outData.x, outData.y]);
      if (shadow instanceof Module) shadow.dispose();
    }
  }
  const target = [shadowFeatures(model, members, lo, `${what} (members)`), shadowFeatures(model, nonMembers, lo, `${what} (nonMembers)`)];
  if (target[0].width !== width) throw new ShapeError(`${what}: the shadows have ${width - 1} output scores but the target has ${target[0].width - 1}`);
  const all = new Float32Array(labels.length * width);
  let off = 0;
  for (const f of feats) {
    all.set(f, off);
    off += f.length;
  }
  const x = tensor(all, [labels.length, width]);
  const y = tensor(Float32Array.from(labels), [labels.length, 1]);
  // Standardised features (by the shadows' statistics) keep the attack MLP's training well scaled.
  const [mean, std] = tidy(() => {
    const m = x.mean(0, true);
    return [m, x.sub(m).square().mean(0, true).sqrt().add(1e-6)];
  });
  const net = new Sequential(new Linear(width, 32, { seed: seed * 7 + 1 }), new ReLU(), new Linear(32, 1, { seed: seed * 7 + 2 }));
  const optimizer = new Adam(net.parameters(), { lr: 0.01 });
  try {
    const xs = tidy(() => x.sub(mean).div(std));
    try {
      net.compile({ optimizer, loss: (p, t) => binaryCrossEntropy(p, t, { fromLogits: true }) });
      await net.fit(xs, y, { epochs, batchSize: 128, seed, verbose: 0 });
    } finally {
      xs.dispose();
    }
    const score = (f: { feats: Float32Array }): Float32Array => tidy(() => {
      const t = tensor(f.feats, [f.feats.length / width, width]).sub(mean).div(std);
      return Float32Array.from(net.predict(t, { batchSize: 1024 }).dataSync() as Float32Array);
    });
    return { members: score(target[0]), nonMembers: score(target[1]) };
  } finally {
    optimizer.dispose();
    net.dispose();
    dispose([x, y, mean, std]);
  }
}

// ------------------------------------------------------------------------------------- one-run audit

/** Options of the ε bound (confidence 1 − β). */
export interface EpsilonBoundOptions {
  /** The δ of the guarantee being audited (default 1e-5). */
  delta?: number;
  /** 1 − confidence (default 0.05: the bound holds with 95% probability). */
  beta?: number;
}

/** log C(r, k) for k = 0..r (log-factorials by summation: exact enough for any r that fits memory). */
function logBinomials(r: number): Float64Array {
  const lf = new Float64Array(r + 1);
  for (let i = 2; i <= r; i++) lf[i] = lf[i - 1] + Math.log(i);
  return lf.map((_, k) => lf[r] - lf[k] - lf[r - k]);
}

/**
 * The p-value of `correct` right guesses out of `guesses` under the hypothesis that training is
 * (ε, δ)-DP: P[Binomial(r, q) ≥ v] with q = e^ε / (1 + e^ε), plus Steinke et al.'s δ term
 * 2mδ · max_{1≤i≤v} P[v − i ≤ Binomial(r, q) < v] / i (their Appendix D).
 */
function auditPValue(m: number, r: number, v: number, eps: number, delta: number, logC: Float64Array): number {
  // log q and log(1 - q) without overflow for any ε ≥ 0.
  const logQ = -Math.log1p(Math.exp(-eps));
  const log1mQ = -eps + logQ;
  const pmf = (k: number) => Math.exp(logC[k] + k * logQ + (r - k) * log1mQ);
  let tail = 0;
  for (let k = v; k <= r; k++) tail += pmf(k);
  if (delta === 0) return Math.min(tail, 1);
  let alpha = 0;
  let sum = 0;
  for (let i = 1; i <= v; i++) {
    sum += pmf(v - i);
    if (sum > i * alpha) alpha = sum / i;
  }
  return Math.min(tail + alpha * delta * 2 * m, 1);
}

/**
 * The empirical lower bound on ε from a one-run audit (Steinke, Nasr & Jagielski 2023, Theorem 3.1
 * and Appendix D): `m` canaries, each included in training with probability ½; the auditor made
 * `guesses` (r) membership guesses, `correct` (v) of them right. Returns the largest ε at which
 * (ε, δ)-DP is still rejected at confidence 1 − β — 0 when nothing can be rejected. A correct
 * (ε, δ)-DP training run exceeds its ε here with probability at most β.
 */
export function oneRunEpsilonBound(m: number, guesses: number, correct: number, opts: EpsilonBoundOptions = {}): number {
  const what = 'oneRunEpsilonBound';
  checkSize(m, `${what}: m`, 1);
  checkInt(guesses, `${what}: guesses`, 0, m);
  checkInt(correct, `${what}: correct`, 0, guesses);
  const o = checkOptions(opts, `${what} options`);
  const delta = o.delta === undefined ? 1e-5 : checkNumber(o.delta, `${what}: delta`);
  if (!(delta >= 0 && delta <= 1)) throw new ArgumentError(`${what}: delta must be in [0, 1], got ${delta}`);
  const beta = o.beta === undefined ? 0.05 : checkNumber(o.beta, `${what}: beta`);
  if (!(beta > 0 && beta < 1)) throw new ArgumentError(`${what}: beta must be in (0, 1), got ${beta}`);
  const logC = logBinomials(guesses);
  const p = (eps: number) => auditPValue(m, guesses, correct, eps, delta, logC);
  if (p(0) >= beta) return 0;
  // Keep p(lo) < β ≤ p(hi); p rises with ε (towards 1 as q → 1), so doubling finds hi.
  let lo = 0;
  let hi = 1;
  while (p(hi) < beta) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 100 && hi - lo > 1e-10; i++) {
    const mid = (lo + hi) / 2;
    if (p(mid) < beta) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** What `oneRunAudit` hands your training function. */
export interface CanaryInclusion {
  /** The included canaries (borrowed: freed once your `train` has resolved). */
  x: Tensor;
  /** Labels of the included canaries (borrowed like `x`). */
  y: Tensor;
  /** Per canary: whether it is included (drawn with probability ½). */
  mask: boolean[];
}

/** Options of `oneRunAudit`. */
export interface OneRunAuditOptions extends ScoringOptions, EpsilonBoundOptions {
  /** The m canaries: examples the auditor will try to tell in from out (e.g. mislabeled or out-of-distribution points). */
  canaries: LabeledData;
  /**
   * Your training run: train on your data plus the included canaries, however you train (DP or
   * not), and return the model. The model is yours (returned in the result, not disposed).
   */
  train: (included: CanaryInclusion) => Module | Promise<Module>;
  /**
   * Membership score of each canary under the trained model, higher = more likely included
   * (default: the log-odds of the true label, i.e. lowest loss first; the negated `loss` if given).
   */
  score?: (model: Module, canaries: LabeledData) => Tensor | Float32Array | number[];
  /** Number of "included" guesses: the top-scored canaries (default ⌈m/10⌉). */
  kPositive?: number;
  /** Number of "excluded" guesses: the lowest-scored canaries (default ⌈m/10⌉). */
  kNegative?: number;
  /** Seed of the inclusion draw (default: the global random stream). */
  seed?: number;
}

/** What `oneRunAudit` returns. */
export interface OneRunAuditResult {
  /** The empirical ε lower bound at confidence 1 − β (0: no evidence of leakage). */
  epsilon: number;
  /** Number of canaries. */
  m: number;
  /** r = kPositive + kNegative. */
  guesses: number;
  /** v: guesses that were right. */
  correct: number;
  /** Number of "included" guesses made (the top-scored canaries). */
  kPositive: number;
  /** Number of "excluded" guesses made (the lowest-scored canaries). */
  kNegative: number;
  /** δ of the reported ε lower bound (default 1e-5). */
  delta: number;
  /** Confidence parameter: the bound holds with probability 1 − β (default 0.05). */
  beta: number;
  /** Which canaries were included. */
  mask: boolean[];
  /** Each canary's membership score. */
  scores: Float32Array;
  /** The model your `train` returned (yours to dispose). */
  model: Module;
}

/**
 * A one-run privacy audit (Steinke, Nasr & Jagielski 2023): includes each canary with probability ½,
 * runs your `train` once, scores every canary under the trained model, guesses the `kPositive`
 * top-scored canaries "included" and the `kNegative` lowest "excluded", and turns the number of
 * right guesses into an ε lower bound (`oneRunEpsilonBound`). It works with any training — a
 * private model must give a bound below its accountant's ε; a model that memorises gives one
 * clearly above 0. Choose k before looking at the scores: picking it after weakens the confidence.
 */
export async function oneRunAudit(opts: OneRunAuditOptions): Promise<OneRunAuditResult> {
  const what = 'oneRunAudit';
  const o = checkOptions(checkObject<OneRunAuditOptions>(opts, what, 'an options object { canaries, train, ... }'), `${what} options`);
  const canaries = checkData(o.canaries, `${what}: canaries`);
  const train = checkFunction<OneRunAuditOptions['train']>(o.train, `${what}: train`);
  if (o.score !== undefined) checkFunction(o.score, `${what}: score`);
  const lo = checkScoring(o, what);
  const m = canaries.x.shape[0];
  const dflt = Math.ceil(m / 10);
  const kPositive = o.kPositive === undefined ? dflt : checkInt(o.kPositive, `${what}: kPositive`, 0, m);
  const kNegative = o.kNegative === undefined ? dflt : checkInt(o.kNegative, `${what}: kNegative`, 0, m);
  if (kPositive + kNegative > m) throw new ArgumentError(`${what}: kPositive + kNegative (${kPositive + kNegative}) must not exceed the ${m} canaries`);
  const bound = { delta: o.delta, beta: o.beta };
  // Check the bound's options before the (long) training run.
  oneRunEpsilonBound(m, 0, 0, bound);
  const seed = o.seed === undefined ? undefined : checkInt(o.seed, `${what}: seed`, 0);
  const mask = tidy(() => Array.from(bernoulli([m], 0.5, seed === undefined ? undefined : { seed }).dataSync(), (b) => b === 1));
  const included = tidy(() => {
    const idx = tensor(Int32Array.from(mask.flatMap((b, i) => (b ? [i] : []))), [mask.filter(Boolean).length], 'int32');
    return { x: canaries.x.indexSelect(0, idx), y: canaries.y.indexSelect(0, idx) };
  });
  let model: unknown;
  try {
    model = await train({ x: included.x, y: included.y, mask: [...mask] });
  } finally {
    dispose([included.x, included.y]);
  }
  assertModule(model, `${what}: train must return the trained Module; it`);
  const scores = o.score
    ? noGrad(() => tidy(() => perExample(o.score!(model as Module, canaries), m, `${what}: score`)))
    : memberScores(model, canaries, lo, what);
  // Rank by score (ties by index: the draw is independent of the order, so this guesses fairly).
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  let correct = 0;
  for (let i = 0; i < kPositive; i++) if (mask[order[i]]) correct++;
  for (let i = m - kNegative; i < m; i++) if (!mask[order[i]]) correct++;
  const guesses = kPositive + kNegative;
  const epsilon = oneRunEpsilonBound(m, guesses, correct, bound);
  return {
    epsilon, m, guesses, correct, kPositive, kNegative,
    delta: bound.delta ?? 1e-5, beta: bound.beta ?? 0.05, mask, scores, model: model as Module,
  };
}
