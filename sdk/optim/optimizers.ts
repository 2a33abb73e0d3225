/**
 * Optimizers. Each parameter update is one fused, in-place engine kernel (PyTorch's formulas).
 * Parameter groups carry their own hyper-parameters (`{ params, lr, weightDecay, ... }`);
 * `stateDict()`/`loadStateDict()` capture hyper-parameters, step counts and moment tensors, so
 * training resumes exactly.
 */
import { ArgumentError, ShapeError } from '../errors.js';
import { full, zeros } from '../creation.js';
import { keep, tidy } from '../memory.js';
import { call } from '../runtime.js';
import { bumpGradEpoch, Tensor } from '../tensor.js';
import { describe } from '../args.js';
import { fail, v, validate as checkSchema, type Schema } from '../io/validate.js';

/** A parameter group: tensors optimized together with one set of hyper-parameters (PyTorch `param_groups` entry). */
export interface ParamGroup<H> {
  /** Parameters of this group, updated in place by `step()`. */
  params: Tensor[];
  /** Hyper-parameters of this group (defaults filled in). */
  options: H;
}
/** Parameters for an optimizer constructor: a flat tensor list, or groups `{ params, ...overrides }` whose options override the constructor's (PyTorch per-group options). */
export type ParamsArg<H> = Tensor[] | ({
  /** The group's parameters. */
  params: Tensor[];
} & Partial<H>)[];

/** The serialisable state of an optimizer. */
export interface OptimizerState {
  /** Hyper-parameters of each group, in group order. */
  groups: Record<string, number | boolean>[];
  /** Per parameter (in group order): step count and named state tensors. */
  params: {
    /** Updates applied to this parameter. */
    step: number;
    /** Named state tensors, e.g. Adam's `exp_avg` and `exp_avg_sq` (PyTorch's names). */
    tensors: Record<string, Tensor>;
  }[];
}

const TENSOR: Schema<Tensor> = {
  expect: 'a live Tensor',
  check(x, path) {
    if (!(x instanceof Tensor) || x.isDisposed) fail(path, `must be a live Tensor, got ${describe(x)}`);
    return x;
  },
};
/** What `loadStateDict` accepts (hyper-parameter ranges are checked by the optimizer's own `validate`). */
const STATE = v.object({
  groups: v.array(v.record(v.union<number | boolean>(v.number(), v.boolean()), { maxKeys: 64 })),
  params: v.array(v.object({ step: v.int({ min: 0 }), tensors: v.record(TENSOR, { maxKeys: 64 }) })),
});

interface ParamState {
  step: number;
  tensors: Record<string, Tensor>;
}

/** The one hyper-parameter every optimizer's groups have; what code that takes "any optimizer" may read and set. */
export interface LearningRate {
  /** Learning rate of the group. */
  lr: number;
}

/** Base class of the optimizers: holds parameter groups and per-parameter state; subclasses implement the update. `step()` applies it to every parameter with a gradient. */
export abstract class Optimizer<H extends LearningRate = LearningRate> {
  /** Parameter groups, each with its own hyper-parameters (PyTorch's `param_groups`). */
  readonly groups: ParamGroup<H>[];
  /** Per-parameter state (step count and tensors such as momentum buffers), made on first use. */
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: ParamsArg<H>, defaults: H) {
    if (!Array.isArray(params) || params.length === 0) throw new ArgumentError('an optimizer needs a non-empty list of parameters or parameter groups');
    const groups = (params[0] as { params?: unknown }).params !== undefined
      ? (params as ({ params: Tensor[] } & Partial<H>)[]).map(({ params: ps, ...h }) => ({ params: ps, options: { ...defaults, ...h } as H }))
      : [{ params: params as Tensor[], options: { ...defaults } }];
    // A parameter listed twice would be stepped twice per step() (PyTorch refuses it too).
    const seen = new Map<Tensor, string>();
    groups.forEach((g, gi) => {
      this.validate(g.options);
      if (!Array.isArray(g.params)) throw new ArgumentError('a parameter group needs a `params` array');
      g.params.forEach((p, i) => {
        const where = groups.length > 1 ? `parameter ${i} of group ${gi}` : `parameter ${i}`;
        if (!(p instanceof Tensor)) throw new ArgumentError(`${where} must be a Tensor, got ${describe(p)}`);
        const first = seen.get(p);
        if (first !== undefined) throw new ArgumentError(`${where} is the same tensor as ${first}: a parameter can appear only once in an optimizer`);
        seen.set(p, where);
      });
    });
    this.groups = groups;
  }

  /** Checks hyper-parameters; subclasses add theirs. */
  protected validate(h: H): void {
    if (!(h.lr >= 0 && Number.isFinite(h.lr))) throw new ArgumentError(`learning rate must be finite and >= 0, got ${h.lr}`);
  }

  /** Learning rate of group 0 (schedulers set every group). */
  get lr(): number {
    return this.groups[0].options.lr;
  }
  /** Sets the learning rate of every group; ArgumentError unless finite and >= 0. */
  set lr(v: number) {
    // A NaN or negative rate would silently wreck training at the next step().
    if (!(typeof v === 'number' && v >= 0 && Number.isFinite(v))) throw new ArgumentError(`learning rate must be finite and >= 0, got ${describe(v)}`);
    for (const g of this.groups) g.options.lr = v;
  }

  /** `p`'s state, created with zero tensors `names` on first use. */
  protected stateOf(p: Tensor, names: string[]): ParamState {
    let s = this.state.get(p);
    if (!s) {
      const tensors: Record<string, Tensor> = {};
      for (const n of names) tensors[n] = keep(zeros(p.shape));
      s = { step: 0, tensors };
      this.state.set(p, s);
    }
    return s;
  }

  /** Applies one update to every parameter that has a gradient. */
  step(): void {
    for (const g of this.groups) {
      for (const p of g.params) {
        if (!p.requiresGrad) continue;
        const grad = p.grad;
        if (!grad) continue;
        this.update(p, grad, g.options);
      }
    }
  }

  /** Updates `p` in place from its gradient `g` under hyper-parameters `h` (one engine kernel). */
  protected abstract update(p: Tensor, g: Tensor, h: H): void;

  /** Names of the state tensors a parameter has under hyper-parameters `h` (null: any identifier). */
  protected stateNames(_h: H): string[] | null {
    return null;
  }

  /** Clears the gradients of every parameter. */
  zeroGrad(): void {
    for (const g of this.groups) for (const p of g.params) p.zeroGrad();
  }

  /** Hyper-parameters and state per parameter, to resume exactly (PyTorch's `state_dict`). */
  stateDict(): OptimizerState {
    const params: OptimizerState['params'] = [];
    for (const g of this.groups) {
      for (const p of g.params) {
        const s = this.state.get(p);
        params.push({ step: s?.step ?? 0, tensors: s ? { ...s.tensors } : {} });
      }
    }
    return { groups: this.groups.map((g) => ({ ...(g.options as unknown as Record<string, number | boolean>) })), params };
  }

  /**
   * Restores hyper-parameters, step counts and moments (copied into this optimizer's own tensors).
   * Everything is checked before anything changes (ArgumentError naming the field): the group
   * and parameter counts, each hyper-parameter's type and range, steps, tensor shapes.
   */
  loadStateDict(st: OptimizerState): void {
    const s = checkSchema(STATE, st, 'optimizer state', ArgumentError);
    if (s.groups.length !== this.groups.length) {
      throw new ArgumentError(`optimizer state has ${s.groups.length} parameter groups, this optimizer has ${this.groups.length}`);
    }
    const flat = this.groups.flatMap((g) => g.params);
    if (s.params.length !== flat.length) throw new ArgumentError(`optimizer state covers ${s.params.length} parameters, this optimizer has ${flat.length}`);
    const merged = s.groups.map((h, i) => {
      const cur = this.groups[i].options as unknown as Record<string, unknown>;
      for (const [k, x] of Object.entries(h)) {
        if (!Object.hasOwn(cur, k)) throw new ArgumentError(`optimizer state: groups[${i}].${k.slice(0, 40)} is not a hyper-parameter of ${this.constructor.name}`);
        if (typeof x !== typeof cur[k]) throw new ArgumentError(`optimizer state: groups[${i}].${k} must be a ${typeof cur[k]}, got ${describe(x)}`);
      }
      const m = { ...cur, ...h } as unknown as H;
      this.validate(m);
      return m;
    });
    const groupOf = this.groups.flatMap((g, gi) => g.params.map(() => gi));
    flat.forEach((p, i) => {
      const allowed = this.stateNames(merged[groupOf[i]]);
      for (const [n, t] of Object.entries(s.params[i].tensors)) {
        if (allowed ? !allowed.includes(n) : !/^[A-Za-z_][A-Za-z0-9_]{0,63}$/.test(n) || n in Object.prototype) {
          throw new ArgumentError(`optimizer state: parameter ${i} has a state tensor '${n.slice(0, 40)}' that ${this.constructor.name} does not use${allowed ? ` (it uses ${allowed.join(', ') || 'none'})` : ''}`);
        }
        if (t.dtype !== 'float32' || t.shape.join() !== p.shape.join()) {
          throw new ShapeError(`optimizer state '${n.slice(0, 40)}' of parameter ${i} is ${t.dtype} [${t.shape.join(', ')}], the parameter float32 [${p.shape.join(', ')}]`);
        }
      }
    });
    merged.forEach((m, i) => Object.assign(this.groups[i].options, m));
    flat.forEach((p, i) => {
      const src = s.params[i];
      const names = Object.keys(src.tensors);
      if (names.length === 0 && src.step === 0) {
        // Never stepped when saved (frozen, or no gradient yet): left fresh, so its first step makes
        // its state as in the uninterrupted run (an empty entry would lack the moments then).
        const old = this.state.get(p);
        if (old) for (const t of Object.values(old.tensors)) t.dispose();
        this.state.delete(p);
        return;
      }
      const ps = this.stateOf(p, names);
      for (const n of names) {
        ps.tensors[n] ??= keep(zeros(p.shape));
        ps.tensors[n].assign(src.tensors[n]);
      }
      ps.step = src.step;
    });
  }

  /** Frees the optimizer's state tensors. */
  dispose(): void {
    for (const s of this.state.values()) for (const t of Object.values(s.tensors)) t.dispose();
    this.state.clear();
  }
}

/** Options of {@link SGD}; defaults match PyTorch `torch.optim.SGD`. */
export interface SGDOptions {
  /** Learning rate (default 0.01). */
  lr: number;
  /** Momentum factor (default 0: plain SGD). */
  momentum: number;
  /** Dampening for momentum (default 0). */
  dampening: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Use Nesterov momentum (default false; needs momentum > 0 and dampening 0). */
  nesterov: boolean;
}
/** Stochastic gradient descent with optional momentum (Nesterov) and weight decay. */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: ParamsArg<SGDOptions>, o: Partial<SGDOptions> = {}) {
    super(params, { lr: 0.01, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...o });
  }
  protected override validate(h: SGDOptions): void {
    super.validate(h);
    if (!(h.momentum >= 0)) throw new ArgumentError(`momentum must be >= 0, got ${h.momentum}`);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) throw new ArgumentError('Nesterov momentum needs momentum > 0 and dampening 0');
  }
  protected override stateNames(h: SGDOptions): string[] {
    return h.momentum > 0 ? ['momentum_buffer'] : [];
  }
  protected update(p: Tensor, g: Tensor, h: SGDOptions): void {
    const s = this.stateOf(p, this.stateNames(h));
    const buf = s.tensors.momentum_buffer;
    call((e) => e.optim_sgd(p.handle, g.handle, buf ? buf.handle : 0, h.lr, h.momentum, h.dampening, h.weightDecay, h.nesterov, s.step === 0));
    s.step++;
  }
}

/** Options of {@link Adam} / {@link AdamW}; defaults match PyTorch. */
export interface AdamOptions {
  /** Learning rate (default 1e-3). */
  lr: number;
  /** Decay rate of the first-moment estimate (default 0.9), in [0, 1). */
  beta1: number;
  /** Decay rate of the second-moment estimate (default 0.999), in [0, 1). */
  beta2: number;
  /** Term added to the denominator for numerical stability (default 1e-8). */
  eps: number;
  /** Weight decay: L2 on the gradient for Adam (default 0), decoupled for AdamW (default 0.01). */
  weightDecay: number;
}
function checkBetas(h: AdamOptions): void {
  for (const [n, b] of [['beta1', h.beta1], ['beta2', h.beta2]] as const) {
    if (!(b >= 0 && b < 1)) throw new ArgumentError(`${n} must be in [0, 1), got ${b}`);
  }
  if (!(h.eps > 0)) throw new ArgumentError(`eps must be > 0, got ${h.eps}`);
}
/** Adam (weight decay added to the gradient, i.e. L2). */
export class Adam extends Optimizer<AdamOptions> {
  /** False: weight decay is added to the gradient (L2), as in PyTorch `Adam`. */
  protected decoupled = false;
  constructor(params: ParamsArg<AdamOptions>, o: Partial<AdamOptions> = {}) {
    super(params, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, ...o });
  }
  protected override validate(h: AdamOptions): void {
    super.validate(h);
    checkBetas(h);
  }
  protected override stateNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }
  protected update(p: Tensor, g: Tensor, h: AdamOptions): void {
    const s = this.stateOf(p, this.stateNames());
    s.step++;
    call((e) => e.optim_adam(p.handle, g.handle, s.tensors.exp_avg.handle, s.tensors.exp_avg_sq.handle, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, this.decoupled, s.step));
  }
}
/** AdamW: Adam with decoupled weight decay (p ← p·(1 − lr·wd) before the update). */
export class AdamW extends Adam {
  /** True: weight decay is applied directly to the weights, as in PyTorch `AdamW`. */
  protected override decoupled = true;
  constructor(params: ParamsArg<AdamOptions>, o: Partial<AdamOptions> = {}) {
    super(params, { weightDecay: 0.01, ...o });
  }
}

/** Options of {@link RMSProp}; defaults match PyTorch `torch.optim.RMSprop`. */
export interface RMSPropOptions {
  /** Learning rate (default 0.01). */
  lr: number;
  /** Smoothing constant of the squared-gradient average (default 0.99). */
  alpha: number;
  /** Term added to the denominator for numerical stability (default 1e-8). */
  eps: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Momentum factor (default 0). */
  momentum: number;
  /** Centered RMSProp: normalize by the estimated gradient variance (default false). */
  centered: boolean;
}
/** RMSProp, optionally with momentum and centering. */
export class RMSProp extends Optimizer<RMSPropOptions> {
  constructor(params: ParamsArg<RMSPropOptions>, o: Partial<RMSPropOptions> = {}) {
    super(params, { lr: 0.01, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false, ...o });
  }
  protected override validate(h: RMSPropOptions): void {
    super.validate(h);
    if (!(h.alpha >= 0 && h.alpha < 1)) throw new ArgumentError(`alpha must be in [0, 1), got ${h.alpha}`);
    if (!(h.momentum >= 0)) throw new ArgumentError(`momentum must be >= 0, got ${h.momentum}`);
  }
  protected override stateNames(h: RMSPropOptions): string[] {
    return ['square_avg', ...(h.momentum > 0 ? ['momentum_buffer'] : []), ...(h.centered ? ['grad_avg'] : [])];
  }
  protected update(p: Tensor, g: Tensor, h: RMSPropOptions): void {
    const s = this.stateOf(p, this.stateNames(h));
    const t = s.tensors;
    call((e) => e.optim_rmsprop(p.handle, g.handle, t.square_avg.handle, t.momentum_buffer?.handle ?? 0, t.grad_avg?.handle ?? 0,
      h.lr, h.alpha, h.eps, h.weightDecay, h.momentum, h.centered));
    s.step++;
  }
}

/** Options of {@link Adagrad}; defaults match PyTorch `torch.optim.Adagrad`. */
export interface AdagradOptions {
  /** Learning rate (default 0.01). */
  lr: number;
  /** Learning-rate decay: the rate at step t is `lr / (1 + (t − 1)·lrDecay)` (default 0). */
  lrDecay: number;
  /** L2 penalty added to the gradient (default 0). */
  weightDecay: number;
  /** Term added to the denominator for numerical stability (default 1e-10). */
  eps: number;
  /** Starting value of the squared-gradient accumulators (default 0). */
  initialAccumulatorValue: number;
}
/** Adagrad. */
export class Adagrad extends Optimizer<AdagradOptions> {
  constructor(params: ParamsArg<AdagradOptions>, o: Partial<AdagradOptions> = {}) {
    super(params, { lr: 0.01, lrDecay: 0, weightDecay: 0, eps: 1e-10, initialAccumulatorValue: 0, ...o });
  }
  protected override stateNames(): string[] {
    return ['sum'];
  }
  protected update(p: Tensor, g: Tensor, h: AdagradOptions): void {
    const fresh = !this.state.has(p);
    const s = this.stateOf(p, this.stateNames());
    if (fresh && h.initialAccumulatorValue !== 0) tidy(() => { s.tensors.sum.assign(full(p.shape, h.initialAccumulatorValue)); });
    s.step++;
    call((e) => e.optim_adagrad(p.handle, g.handle, s.tensors.sum.handle, h.lr, h.lrDecay, h.weightDecay, h.eps, s.step));
  }
}

// ------------------------------------------------------------------------------ gradient clipping

function gradsOf(params: Tensor[]): Tensor[] {
  if (!Array.isArray(params)) throw new ArgumentError(`gradient clipping needs an array of parameters, got ${describe(params)}`);
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw new ArgumentError(`gradient clipping: parameter ${i} must be a Tensor, got ${describe(p)}`);
  });
  return params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
}

/** Scales all gradients so their global L2 norm is at most `maxNorm`; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  if (!(typeof maxNorm === 'number' && maxNorm > 0)) throw new ArgumentError(`maxNorm must be a number > 0, got ${describe(maxNorm)}`);
  const grads = gradsOf(params);
  if (grads.length === 0) return 0;
  const norm = call((e) => e.grad_global_norm(Uint32Array.from(grads.map((g) => g.handle))));
  if (norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (const g of grads) call((e) => e.tensor_scale_(g.handle, scale));
    bumpGradEpoch();
  }
  return norm;
}

/** Clamps every gradient element into [-clipValue, clipValue]. */
export function clipGradValue(params: Tensor[], clipValue: number): void {
  if (!(typeof clipValue === 'number' && clipValue > 0)) throw new ArgumentError(`clipValue must be a number > 0, got ${describe(clipValue)}`);
  for (const g of gradsOf(params)) call((e) => e.tensor_clamp_(g.handle, -clipValue, clipValue));
  bumpGradEpoch();
}
