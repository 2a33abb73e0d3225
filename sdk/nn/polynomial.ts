/**
 * Polynomial activations: the only non-linearities a CKKS evaluator (`eg.he`) can compute, since
 * ciphertexts support additions and multiplications but no comparison. `Square` is CryptoNets'
 * x ↦ x² (Gilad-Bachrach et al. 2016); `PolyActivation` is a trainable degree-2 polynomial that
 * starts as the least-squares fit of ReLU, so a ReLU network can be retrained for encrypted inference
 * with little change. Each costs one multiplicative level under encryption.
 */
import { checkBool, checkFloat32, checkOptions } from '../args.js';
import { scalar } from '../creation.js';
import { tidy } from '../memory.js';
import { tensorArg, type Tensor } from '../tensor.js';
import { Module, registerModule } from './module.js';

/** x ↦ x², element-wise (CryptoNets' square activation: one ciphertext multiplication). */
export class Square extends Module {
  forward(x: Tensor): Tensor {
    return tensorArg(x, 'Square').square();
  }
  override getConfig(): Record<string, unknown> {
    return {};
  }
}

/**
 * Default coefficients: the least-squares fit of ReLU by a·x² + b·x + c on the uniform interval
 * [-4, 4]. With L = 4 the normal equations give b = 1/2 (the odd part of ReLU is x/2 exactly),
 * a = 15 / (32 L) = 0.1171875 and c = 3 L / 32 = 0.375 — all exact in float32.
 */
export const RELU_FIT = Object.freeze({ a: 15 / 128, b: 0.5, c: 0.375 });

/** Options of `PolyActivation`. */
export interface PolyActivationOptions {
  /** Coefficient of x² (default 0.1171875, ReLU's least-squares fit on [-4, 4]). */
  a?: number;
  /** Coefficient of x (default 0.5). */
  b?: number;
  /** Constant term (default 0.375). */
  c?: number;
  /** Whether `a`, `b`, `c` are trained by optimizers (default true); false registers them frozen (`unfreeze()` re-enables). */
  trainable?: boolean;
}

/**
 * a·x² + b·x + c element-wise, with `a`, `b`, `c` scalar parameters (state-dict keys `a`, `b`, `c`).
 * The defaults approximate ReLU on [-4, 4] (see `RELU_FIT`); keep pre-activations in that range
 * (e.g. with BatchNorm before it) for the approximation to hold. Under `eg.he` it costs one
 * multiplicative level, like `Square`.
 */
export class PolyActivation extends Module {
  /** Whether `a`, `b`, `c` were registered trainable (`requiresGrad`), as saved in the config. */
  readonly trainable: boolean;
  constructor(opts: PolyActivationOptions = {}) {
    checkOptions(opts, 'PolyActivation options');
    const coef = (k: 'a' | 'b' | 'c'): number => (opts[k] === undefined ? RELU_FIT[k] : checkFloat32(opts[k], `PolyActivation ${k}`));
    const a = coef('a');
    const b = coef('b');
    const c = coef('c');
    const trainable = opts.trainable === undefined ? true : checkBool(opts.trainable, 'PolyActivation trainable');
    super();
    this.trainable = trainable;
    for (const [name, value] of [['a', a], ['b', b], ['c', c]] as const) {
      this.registerParameter(name, scalar(value)).requiresGrad = trainable;
    }
  }
  /** The x² coefficient (a scalar parameter). */
  get a(): Tensor {
    return this.param('a');
  }
  /** The x coefficient (a scalar parameter). */
  get b(): Tensor {
    return this.param('b');
  }
  /** The constant term (a scalar parameter). */
  get c(): Tensor {
    return this.param('c');
  }
  /** The current coefficients as numbers (what an encrypted evaluator multiplies by). */
  coefficients(): { a: number; b: number; c: number } {
    return { a: this.a.item(), b: this.b.item(), c: this.c.item() };
  }
  forward(x: Tensor): Tensor {
    tensorArg(x, 'PolyActivation');
    // Horner form (a·x + b)·x + c: one multiplication by x less than a·x² + b·x + c.
    return tidy(() => x.mul(this.a).add(this.b).mul(x).add(this.c));
  }
  override getConfig(): Record<string, unknown> {
    return { ...this.coefficients(), trainable: this.trainable };
  }
}

type Cfg = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
registerModule('Square', () => new Square());
registerModule('PolyActivation', (c: Cfg) => new PolyActivation({ a: c.a, b: c.b, c: c.c, trainable: c.trainable }));
