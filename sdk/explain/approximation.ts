/**
 * Integration rules for path methods (Captum's `approximation_methods`): the points `alphas` in
 * [0, 1] at which the gradient is evaluated and their `weights` (step sizes). Computed in float64
 * with + - * / only (IEEE-exact in every JS engine), so every runtime gets the same bits.
 */
import { ArgumentError } from '../errors.js';
import { checkSize } from '../args.js';

/** Captum's integration rules for path methods: left/right/middle Riemann sums, the trapezoid rule, or Gauss–Legendre. */
export type IntegrationMethod = 'riemann_left' | 'riemann_right' | 'riemann_middle' | 'riemann_trapezoid' | 'gausslegendre';
/** Every {@link IntegrationMethod}, in Captum's order. */
export const INTEGRATION_METHODS: readonly IntegrationMethod[] = ['riemann_left', 'riemann_right', 'riemann_middle', 'riemann_trapezoid', 'gausslegendre'];

/** Integration points and weights of a rule. */
export interface Quadrature {
  /** Points in [0, 1] along the path where the gradient is evaluated. */
  alphas: Float64Array;
  /** Weight (step size) of each point; they sum to 1. */
  weights: Float64Array;
}

const PI = 3.141592653589793;

/** cos(y) for y in [0, pi] by its Taylor series (only + - * /: the same bits everywhere; a start value for Newton). */
function cosTaylor(y: number): number {
  const y2 = y * y;
  let term = 1;
  let sum = 1;
  for (let k = 1; k < 40; k++) {
    term = (-term * y2) / ((2 * k - 1) * (2 * k));
    sum += term;
  }
  return sum;
}

/** Legendre P_n(x) and P_{n-1}(x) by the three-term recurrence. */
function legendre(n: number, x: number): [number, number] {
  let p0 = 1;
  let p1 = x;
  for (let k = 1; k < n; k++) {
    const p2 = ((2 * k + 1) * x * p1 - k * p0) / (k + 1);
    p0 = p1;
    p1 = p2;
  }
  return [p1, p0];
}

/**
 * Gauss–Legendre nodes and weights on [-1, 1], ascending (numpy's `leggauss`): Newton's method on
 * P_n from the classical cosine start values, a fixed iteration rule, so the result is a function
 * of n alone.
 */
export function gaussLegendre(n: number): Quadrature {
  checkSize(n, 'gaussLegendre: number of points', 1);
  const x = new Float64Array(n);
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // Root i + 1 counted from +1 downwards; stored ascending.
    let r = cosTaylor((PI * (i + 0.75)) / (n + 0.5));
    let dp = 1;
    for (let it = 0; it < 100; it++) {
      const [p, q] = legendre(n, r);
      dp = (n * (r * p - q)) / (r * r - 1);
      const dx = p / dp;
      r -= dx;
      if (Math.abs(dx) <= 1e-15) break;
    }
    const [p, q] = legendre(n, r);
    dp = (n * (r * p - q)) / (r * r - 1);
    x[n - 1 - i] = r;
    w[n - 1 - i] = 2 / ((1 - r * r) * dp * dp);
  }
  return { alphas: x, weights: w };
}

/** The evaluation points in [0, 1] and weights (summing to 1) of `method` with `n` steps. */
export function quadrature(method: IntegrationMethod, n: number): Quadrature {
  if (!INTEGRATION_METHODS.includes(method)) {
    throw new ArgumentError(`unknown integration method ${JSON.stringify(String(method)).slice(0, 40)}; use one of ${INTEGRATION_METHODS.join(', ')}`);
  }
  if (!Number.isInteger(n) || n < 1 || n > 1e6) throw new ArgumentError(`nSteps must be an integer between 1 and 1000000, got ${n}`);
  const alphas = new Float64Array(n);
  const weights = new Float64Array(n);
  switch (method) {
    case 'riemann_left':
    case 'riemann_right':
    case 'riemann_middle': {
      const shift = method === 'riemann_left' ? 0 : method === 'riemann_right' ? 1 : 0.5;
      for (let k = 0; k < n; k++) {
        alphas[k] = (k + shift) / n;
        weights[k] = 1 / n;
      }
      break;
    }
    case 'riemann_trapezoid':
      if (n < 2) throw new ArgumentError('riemann_trapezoid needs nSteps >= 2');
      for (let k = 0; k < n; k++) {
        alphas[k] = k / (n - 1);
        weights[k] = k === 0 || k === n - 1 ? 0.5 / (n - 1) : 1 / (n - 1);
      }
      break;
    case 'gausslegendre': {
      const g = gaussLegendre(n);
      for (let k = 0; k < n; k++) {
        alphas[k] = 0.5 * (g.alphas[k] + 1);
        weights[k] = 0.5 * g.weights[k];
      }
      break;
    }
  }
  return { alphas, weights };
}
