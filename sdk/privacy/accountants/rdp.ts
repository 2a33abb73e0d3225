/**
 * Rényi DP of the Poisson-subsampled Gaussian mechanism (Mironov 2017; Mironov, Talwar & Zhang 2019)
 * and its conversion to (ε, δ): Opacus's `analysis/rdp.py` and `RDPAccountant`.
 *
 * RDP at order α is log(A_α)/(α − 1). Integer orders sum the exact binomial expansion of A_α;
 * fractional orders use the two-sided series of Mironov et al. 2019 §3.3 (terms of both signs, so
 * the sum is kept as a signed log). Everything is in log space: no term overflows for large α or
 * small σ.
 */
import { checkObject, checkOptions, describe } from '../../args.js';
import { ArgumentError } from '../../errors.js';
import { Accountant, checkBudget, checkDelta, checkMechanism, MAX_STEPS, settleDown, type HistoryEntry, type Mechanism } from './accountant.js';
import { logAddExp, logErfc, SignedLogSum } from './math.js';

/** Opacus's default orders: 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63. */
export const DEFAULT_ALPHAS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, i) => 1 + (i + 1) / 10),
  ...Array.from({ length: 52 }, (_, i) => 12 + i),
]);

/** How RDP is converted to (ε, δ). */
export type RdpConversion = 'improved' | 'classic';

/** log A_α for integer α: Σ_i C(α,i) q^i (1−q)^(α−i) e^{(i²−i)/(2σ²)}. */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const s2 = 2 * sigma * sigma;
  let logA = -Infinity;
  let logC = 0; // log C(α, i), by C(α, i+1) = C(α, i)(α − i)/(i + 1)
  for (let i = 0; i <= alpha; i++) {
    logA = logAddExp(logA, logC + i * logQ + (alpha - i) * log1mQ + (i * i - i) / s2);
    logC += Math.log(alpha - i) - Math.log(i + 1);
  }
  return logA;
}

/** Most terms of the fractional-order series; past it the order is left out (RDP = ∞), as Google's accountant does. */
const MAX_FRAC_TERMS = 100_000;

/**
 * log A_α for fractional α (Mironov et al. 2019 §3.3): the integrals over (−∞, z0] and [z0, ∞)
 * expanded as binomial series. Past i = α the terms fall (geometrically while i < z0, then only
 * polynomially), so the loop stops once i > α + 1 and both terms are falling and below e^-36 of
 * the running total (relative 2e-16).
 */
function logAFrac(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  const s2 = 2 * sigma * sigma;
  const root = Math.SQRT2 * sigma;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const a0 = new SignedLogSum();
  const a1 = new SignedLogSum();
  let logC = 0;
  let signC = 1;
  let last0 = Infinity;
  let last1 = Infinity;
  const settle = alpha + 1;
  for (let i = 0; i < MAX_FRAC_TERMS; i++) {
    const j = alpha - i;
    const s0 = logC + i * logQ + j * log1mQ + (i * i - i) / s2 - Math.LN2 + logErfc((i - z0) / root);
    const s1 = logC + j * logQ + i * log1mQ + (j * j - j) / s2 - Math.LN2 + logErfc((z0 - j) / root);
    a0.add(signC, s0);
    a1.add(signC, s1);
    if (i > settle && s0 < last0 && s1 < last1) {
      const total = new SignedLogSum();
      total.add(a0.sign, a0.log);
      total.add(a1.sign, a1.log);
      if (Math.max(s0, s1) < total.log - 36) return total.sign > 0 ? total.log : NaN;
    }
    last0 = s0;
    last1 = s1;
    // C(α, i+1) = C(α, i)(α − i)/(i + 1); the sign flips each time α − i < 0.
    const f = alpha - i;
    if (f < 0) signC = -signC;
    logC += Math.log(Math.abs(f)) - Math.log(i + 1);
  }
  return Infinity;
}

/** RDP of one step of the sampled Gaussian mechanism at order α (∞ when σ = 0). */
function rdpOneStep(q: number, sigma: number, alpha: number): number {
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

function checkOrders(orders: unknown, where: string): readonly number[] {
  if (!Array.isArray(orders) || orders.length === 0) throw new ArgumentError(`${where}: orders must be a non-empty array of numbers > 1, got ${describe(orders)}`);
  for (const a of orders) {
    if (typeof a !== 'number' || !(a > 1) || !Number.isFinite(a)) throw new ArgumentError(`${where}: every order must be a finite number > 1, got ${describe(a)}`);
  }
  return orders as number[];
}

function checkConversion(c: unknown, where: string): RdpConversion {
  if (c === undefined) return 'improved';
  if (c !== 'improved' && c !== 'classic') throw new ArgumentError(`${where}: conversion must be 'improved' or 'classic', got ${describe(c)}`);
  return c;
}

/** ε = rdp + this at order α: what converting RDP to (ε, δ) costs (see `getPrivacySpent`). */
function conversionCost(a: number, logDelta: number, conversion: RdpConversion): number {
  return conversion === 'classic' ? -logDelta / (a - 1) : -(logDelta + Math.log(a)) / (a - 1) + Math.log1p(-1 / a);
}

/**
 * Opacus's `compute_rdp`: RDP of `steps` steps of the Poisson-subsampled Gaussian mechanism at
 * each order (∞ where σ = 0 or a fractional series does not converge).
 */
export function computeRdp(o: { sampleRate: number; noiseMultiplier: number; steps: number; orders?: readonly number[] }): Float64Array {
  checkObject(o, 'computeRdp', '{ sampleRate, noiseMultiplier, steps, orders }');
  const p = checkMechanism('computeRdp', o);
  const steps = o.steps;
  if (!Number.isSafeInteger(steps) || steps < 0) throw new ArgumentError(`computeRdp: steps must be an integer >= 0, got ${describe(steps)}`);
  const orders = o.orders === undefined ? DEFAULT_ALPHAS : checkOrders(o.orders, 'computeRdp');
  return Float64Array.from(orders, (a) => (steps === 0 ? 0 : rdpOneStep(p.sampleRate, p.noiseMultiplier, a) * steps));
}

/**
 * Opacus's `get_privacy_spent`: the smallest ε over the orders at which RDP `rdp` gives
 * (ε, δ)-DP, and that order. `conversion: 'improved'` (default, Opacus's) is Balle et al. 2020
 * (Theorem 21): ε = rdp − (log δ + log α)/(α − 1) + log((α − 1)/α); `'classic'` is Mironov 2017
 * (Proposition 3): ε = rdp − log δ/(α − 1), what TF-Privacy's MNIST tutorial reports. ε >= 0.
 */
export function getPrivacySpent(o: { orders: readonly number[]; rdp: ArrayLike<number>; delta: number; conversion?: RdpConversion }): {
  /** The smallest ε over the orders. */
  epsilon: number;
  /** The order α that gives it. */
  bestAlpha: number;
} {
  checkObject(o, 'getPrivacySpent', '{ orders, rdp, delta }');
  const orders = checkOrders(o.orders, 'getPrivacySpent');
  const delta = checkDelta(o.delta, 'getPrivacySpent');
  const rdp = o.rdp;
  if (rdp === null || typeof rdp !== 'object' || rdp.length !== orders.length) {
    throw new ArgumentError(`getPrivacySpent: rdp must hold one value per order (${orders.length}), got ${describe(rdp)}`);
  }
  const conversion = checkConversion(o.conversion, 'getPrivacySpent');
  const logDelta = Math.log(delta);
  let best = Infinity;
  let bestAlpha = orders[0];
  for (let i = 0; i < orders.length; i++) {
    const a = orders[i];
    const r = rdp[i];
    if (typeof r !== 'number' || Number.isNaN(r) || r < 0) throw new ArgumentError(`getPrivacySpent: rdp[${i}] must be a number >= 0, got ${describe(r)}`);
    const eps = r + conversionCost(a, logDelta, conversion);
    if (eps < best) {
      best = eps;
      bestAlpha = a;
    }
  }
  return { epsilon: Math.max(0, best), bestAlpha };
}

/** Options of `RDPAccountant.getEpsilon`/`getPrivacySpent`. */
export interface RdpEpsilonOptions {
  /** Orders to optimise over (default `DEFAULT_ALPHAS`). */
  alphas?: readonly number[];
  /** 'improved' (default, Opacus) or 'classic' (TF-Privacy's tutorial numbers). */
  conversion?: RdpConversion;
}

/** Single-step RDP vectors on the default orders, by (σ, q): each is a few thousand erfc calls. */
const defaultRdpCache = new Map<string, Float64Array>();

/** RDP of a whole history at `orders` (the default orders are cached per (σ, q)). */
export function historyRdp(history: readonly HistoryEntry[], orders: readonly number[] = DEFAULT_ALPHAS): Float64Array {
  const total = new Float64Array(orders.length);
  for (const h of history) {
    let one: Float64Array;
    if (orders === DEFAULT_ALPHAS) {
      const key = `${h.noiseMultiplier}:${h.sampleRate}`;
      let c = defaultRdpCache.get(key);
      if (!c) {
        if (defaultRdpCache.size >= 256) defaultRdpCache.clear();
        c = Float64Array.from(orders, (a) => rdpOneStep(h.sampleRate, h.noiseMultiplier, a));
        defaultRdpCache.set(key, c);
      }
      one = c;
    } else {
      one = Float64Array.from(orders, (a) => rdpOneStep(h.sampleRate, h.noiseMultiplier, a));
    }
    for (let i = 0; i < orders.length; i++) total[i] += one[i] * h.steps;
  }
  return total;
}

/**
 * Opacus's `RDPAccountant`: composes the history in RDP (a sum over runs, per order) and converts
 * to (ε, δ) at the best order.
 */
export class RDPAccountant extends Accountant {
  readonly mechanism: Mechanism = 'rdp';

  /**
   * ε at `delta` and the order that gave it; `{ epsilon: 0, bestAlpha: 0 }` before any step (as
   * Opacus) or when every step had q = 0 (nothing was released; the conversion alone would say ~0.1).
   */
  getPrivacySpent(delta: number, o?: RdpEpsilonOptions): {
    /** ε spent at `delta`. */
    epsilon: number;
    /** The Rényi order α that gives it. */
    bestAlpha: number;
  } {
    const d = checkDelta(delta, 'RDPAccountant.getPrivacySpent');
    o = checkOptions(o, 'RDPAccountant.getPrivacySpent options');
    const orders = o.alphas === undefined ? DEFAULT_ALPHAS : checkOrders(o.alphas, 'RDPAccountant.getPrivacySpent: alphas');
    checkConversion(o.conversion, 'RDPAccountant.getPrivacySpent');
    if (this.history.every((h) => h.sampleRate === 0)) return { epsilon: 0, bestAlpha: 0 };
    return getPrivacySpent({ orders, rdp: historyRdp(this.history, orders), delta: d, conversion: o.conversion });
  }

  /** ε spent at `delta` (Infinity where σ = 0). */
  getEpsilon(delta: number, o?: RdpEpsilonOptions): number {
    return this.getPrivacySpent(delta, o).epsilon;
  }

  /**
   * See `Accountant.maxSteps`. Exact and instant: RDP adds up over steps, so at each order the count
   * is (ε − conversion cost − RDP so far) / RDP of one step; the best order wins.
   */
  maxSteps(params: { noiseMultiplier: number; sampleRate: number }, budget: { epsilon: number; delta: number }, o?: RdpEpsilonOptions): number {
    const where = 'RDPAccountant.maxSteps';
    const p = checkMechanism(where, params);
    const b = checkBudget(budget, where);
    o = checkOptions(o, `${where} options`);
    const orders = o.alphas === undefined ? DEFAULT_ALPHAS : checkOrders(o.alphas, `${where}: alphas`);
    const conversion = checkConversion(o.conversion, where);
    const fits = (k: number) => this.epsilonAfter(p, k, (a) => a.getEpsilon(b.delta, o)) <= b.epsilon;
    if (!fits(0)) return 0;
    if (p.sampleRate === 0) return Infinity;
    if (p.noiseMultiplier === 0) return 0;
    const spent = this.history.some((h) => h.sampleRate > 0) ? historyRdp(this.history, orders) : new Float64Array(orders.length);
    const one = historyRdp([{ ...p, steps: 1 }], orders);
    const logDelta = Math.log(b.delta);
    let best = 0;
    for (let i = 0; i < orders.length; i++) {
      const room = b.epsilon - conversionCost(orders[i], logDelta, conversion) - spent[i];
      if (room >= 0 && one[i] > 0) best = Math.max(best, Math.floor(room / one[i]));
    }
    return settleDown(Math.min(best, MAX_STEPS), fits);
  }
}
