/**
 * Numerical composition of privacy random variables (Gopi, Lee & Wutschitz 2021, "Numerical
 * Composition of Differential Privacy"): Opacus's `PRVAccountant`.
 *
 * The privacy loss of one step of the Poisson-subsampled Gaussian mechanism, Y = log(P(x)/Q(x)) with
 * x ~ P = (1−q)N(0, σ²) + qN(1, σ²) and Q = N(0, σ²), is discretised on a uniform grid (its CDF
 * differenced per cell, truncated to the grid, then shifted so the discrete mean equals the
 * continuous one), composed over all steps by FFT (the spectrum raised to the number of steps),
 * and ε(δ) is read off the composed distribution. The grid's width and spacing follow the paper's
 * error analysis (Remark 5.6 and Theorem 5.5, as Opacus chooses them): the true ε lies in
 * [lower, upper] = [ε̂(δ + δerr) − εerr, ε̂(δ − δerr) + εerr]. `getEpsilon` returns `upper`.
 */
import { checkNumber, checkOptions } from '../../args.js';
import { ArgumentError, InternalError } from '../../errors.js';
import { Accountant, checkBudget, checkDelta, checkMechanism, MAX_STEPS, settleDown, type HistoryEntry, type Mechanism } from './accountant.js';
import { gaussLegendre, irfft, normCdf, rfft } from './math.js';
import { DEFAULT_ALPHAS, getPrivacySpent, historyRdp, RDPAccountant } from './rdp.js';

/** Most grid points (2^22: 64 MiB of float64 spectra); beyond it ask for a larger `epsError`. */
export const MAX_PRV_GRID = 1 << 22;

/** Options of `PRVAccountant.getEpsilon` (Opacus's `eps_error`, `delta_error`). */
export interface PrvOptions {
  /** Allowed error in ε (default 0.01). */
  epsError?: number;
  /** Allowed error in δ (default δ/1000). */
  deltaError?: number;
}

/** ε with the accountant's error bound: the true ε at δ lies in [lower, upper]. */
export interface PrvEpsilon {
  /** The guarantee to report: equals `upper` (what `getEpsilon` returns, as Opacus). */
  epsilon: number;
  /** ε read off the discretised distribution at δ itself. */
  estimate: number;
  /** Lower end of the interval holding the true ε. */
  lower: number;
  /** Upper end of the interval holding the true ε (reported as `epsilon`). */
  upper: number;
  /** Allowed error in ε used for the grid. */
  epsError: number;
  /** Allowed error in δ used for the grid. */
  deltaError: number;
  /** Grid points used. */
  gridSize: number;
}

/** z(t) = log((e^t + q − 1)/q), so that the loss is t when x = σ²z + 1/2; −∞ below log(1 − q). */
function zOf(t: number, q: number): number {
  const u = Math.expm1(t) + q;
  return u > 0 ? Math.log(u / q) : -Infinity;
}

/**
 * P(Y <= t) into lo[i] and P(Y > t) into hi[i] for one step. The smaller tail is computed directly
 * (the other is 1 − it, used only in the cell that straddles the median), so the tail that decides
 * δ keeps its relative accuracy.
 */
function tails(t: number, q: number, sigma: number, lo: Float64Array, hi: Float64Array, i: number): void {
  const z = zOf(t, q);
  if (z === -Infinity || z === Infinity) {
    lo[i] = z === Infinity ? 1 : 0;
    hi[i] = 1 - lo[i];
    return;
  }
  const a = (sigma * sigma * z + 0.5) / sigma;
  const b = (sigma * sigma * z - 0.5) / sigma;
  // Right of 0 the upper tail is the small one (the loss's median is near 0): try it first.
  if (t > 0) {
    const sf = (1 - q) * normCdf(-a) + q * normCdf(-b);
    if (sf < 0.5) {
      hi[i] = sf;
      lo[i] = 1 - sf;
      return;
    }
  }
  const cdf = (1 - q) * normCdf(a) + q * normCdf(b);
  if (cdf < 0.5 || t > 0) {
    lo[i] = cdf;
    hi[i] = 1 - cdf;
  } else {
    hi[i] = (1 - q) * normCdf(-a) + q * normCdf(-b);
    lo[i] = 1 - hi[i];
  }
}

const GL = gaussLegendre(16);

/**
 * E[Y | t0 <= Y <= t1] by quadrature in x (Y is increasing in x): composite 16-point Gauss–Legendre
 * over panels of σ/8, on the mixture density, within 40σ of its two modes.
 */
function truncatedMean(q: number, sigma: number, t0: number, t1: number): number {
  const s2 = 2 * sigma * sigma;
  const xOf = (t: number) => sigma * sigma * zOf(t, q) + 0.5;
  const a = Math.max(xOf(t0), -40 * sigma);
  const b = Math.min(xOf(t1), 1 + 40 * sigma);
  if (!(b > a)) throw new InternalError('PRV accountant: empty truncation range');
  const panels = Math.min(1 << 20, Math.ceil((b - a) / (sigma / 8)));
  const width = (b - a) / panels;
  let num = 0;
  let den = 0;
  const norm = 1 / (sigma * Math.sqrt(2 * Math.PI));
  for (let p = 0; p < panels; p++) {
    const mid = a + (p + 0.5) * width;
    for (let k = 0; k < GL.x.length; k++) {
      const x = mid + 0.5 * width * GL.x[k];
      const w = 0.5 * width * GL.w[k];
      const density = norm * ((1 - q) * Math.exp(-(x * x) / s2) + q * Math.exp(-((x - 1) * (x - 1)) / s2));
      const y = Math.log1p(q * Math.expm1((2 * x - 1) / s2));
      num += w * density * y;
      den += w * density;
    }
  }
  return num / den;
}

/** The composed privacy-loss distribution on the grid t_i = (i − k)h + shift. */
interface Composed {
  pmf: Float64Array;
  h: number;
  k: number;
  shift: number;
}

/** The discretisation grid t_i = t0 + i·h, i < n (a power of two), with zero at index k = n/2 − 1. */
interface Grid {
  n: number;
  h: number;
  k: number;
  t0: number;
  t1: number;
}

/** The grid Gopi et al. prescribe for composing `history` (as Opacus chooses it). */
function makeGrid(history: readonly HistoryEntry[], epsError: number, deltaError: number): Grid {
  const total = history.reduce((n, e) => n + e.steps, 0);
  // Remark 5.6: a domain [−L, L] outside which the composed (and each single) loss has mass < δerr/4,
  // bounded by the RDP accountant; 3 more for the discretisation.
  let L = getPrivacySpent({ orders: DEFAULT_ALPHAS, rdp: historyRdp(history), delta: deltaError / 4 }).epsilon;
  for (const e of history) {
    const one = getPrivacySpent({ orders: DEFAULT_ALPHAS, rdp: historyRdp([{ ...e, steps: 1 }]), delta: deltaError / (8 * total) }).epsilon;
    L = Math.max(L, one);
  }
  L = Math.max(L, epsError) + 3;
  const h = epsError / Math.sqrt((total * Math.log(12 / deltaError)) / 2);
  let n = 2;
  while (n < 2 * Math.ceil(L / h) + 2) n *= 2;
  if (!Number.isFinite(L) || n > MAX_PRV_GRID) {
    throw new ArgumentError(`PRVAccountant: ${total} steps at epsError ${epsError} and deltaError ${deltaError} need a grid of ${Number.isFinite(L) ? n : 'unbounded'} points, more than the ${MAX_PRV_GRID} allowed; use a larger epsError, or the 'rdp' accountant`);
  }
  // Zero sits at index k = n/2 − 1: the grid is [−(n/2 − 1)h, (n/2)h], at least [−L, L].
  const k = n / 2 - 1;
  return { n, h, k, t0: -k * h, t1: (n - 1 - k) * h };
}

/** One step's discretised loss on `g`: its half spectrum and the mean-matching shift. */
interface StepSpectrum {
  re: Float64Array;
  im: Float64Array;
  shift: number;
}

function stepSpectrum(sigma: number, q: number, g: Grid): StepSpectrum {
  const { n, h, t0, t1 } = g;
  const p = new Float64Array(n);
  const lo = new Float64Array(n + 1);
  const hi = new Float64Array(n + 1);
  // Cell edges (truncated to [t0, t1]): P(Y <= edge) and P(Y > edge).
  for (let i = 0; i <= n; i++) {
    const edge = i === 0 ? t0 : i === n ? t1 : t0 + (i - 0.5) * h;
    tails(edge, q, sigma, lo, hi, i);
  }
  let mass = 0;
  for (let i = 0; i < n; i++) {
    // Difference the smaller of the two tails: no cancellation against 1.
    p[i] = lo[i + 1] < 0.5 ? lo[i + 1] - lo[i] : hi[i] - hi[i + 1];
    mass += p[i];
  }
  let meanD = 0;
  for (let i = 0; i < n; i++) {
    p[i] /= mass;
    meanD += (t0 + i * h) * p[i];
  }
  // Shift so the discrete mean equals the continuous (truncated) one (Gopi et al. §5.1).
  const shift = truncatedMean(q, sigma, t0, t1) - meanD;
  if (!(Math.abs(shift) < h / 2)) {
    throw new ArgumentError(`PRVAccountant: the grid (spacing ${h.toExponential(3)}) is too coarse for σ = ${sigma}, q = ${q}: its mean is off by ${shift.toExponential(3)}; use a smaller epsError`);
  }
  return { ...rfft(p), shift };
}

/**
 * Σ steps copies of each part's loss, composed on `g` by multiplying spectra. A part may stand for
 * `count` variables already composed (its spectrum taken once: `steps` 1).
 */
function composeOn(g: Grid, parts: readonly { spec: StepSpectrum; steps: number; count?: number }[]): Composed {
  const { n, h, k } = g;
  // Half spectra (rfft): n/2 + 1 complex values; start from a point mass at index 0.
  const accRe = new Float64Array(n / 2 + 1).fill(1);
  const accIm = new Float64Array(n / 2 + 1);
  let shift = 0;
  let total = 0;
  for (const { spec, steps, count } of parts) {
    if (steps === 0) continue;
    powInto(spec.re, spec.im, steps, accRe, accIm);
    shift += spec.shift * steps;
    total += count ?? steps;
  }
  const circ = irfft(accRe, accIm, n);
  // The circular sum of `total` indices counts each variable's offset −k once too often: roll back.
  const roll = total === 0 ? 0 : (((total - 1) % n) * (n / 2 + 1)) % n;
  const pmf = new Float64Array(n);
  for (let i = 0; i < n; i++) pmf[(i + roll) % n] = circ[i];
  return { pmf, h, k, shift };
}

/** The runs' composed spectrum on `g` as one part (its `count` the runs' steps). */
function composeSpectrum(g: Grid, runs: readonly HistoryEntry[]): { spec: StepSpectrum; steps: number; count: number } {
  const re = new Float64Array(g.n / 2 + 1).fill(1);
  const im = new Float64Array(g.n / 2 + 1);
  let shift = 0;
  let count = 0;
  for (const e of runs) {
    const spec = stepSpectrum(e.noiseMultiplier, e.sampleRate, g);
    powInto(spec.re, spec.im, e.steps, re, im);
    shift += spec.shift * e.steps;
    count += e.steps;
  }
  return { spec: { re, im, shift }, steps: 1, count };
}

/** Σ_i steps_i copies of each run's PRV, composed on the grid the history needs. */
function compose(history: readonly HistoryEntry[], epsError: number, deltaError: number): Composed {
  const g = makeGrid(history, epsError, deltaError);
  return composeOn(g, history.map((e) => ({ spec: stepSpectrum(e.noiseMultiplier, e.sampleRate, g), steps: e.steps })));
}

/** acc ·= (re + i·im)^p elementwise, by repeated squaring (only + and ×: identical bits everywhere). */
function powInto(re: Float64Array, im: Float64Array, p: number, accRe: Float64Array, accIm: Float64Array): void {
  for (let i = 0; i < re.length; i++) {
    let br = re[i];
    let bi = im[i];
    let rr = 1;
    let ri = 0;
    for (let e = p; e > 0; e = Math.floor(e / 2)) {
      if (e % 2 === 1) {
        const t = rr * br - ri * bi;
        ri = rr * bi + ri * br;
        rr = t;
      }
      const t = br * br - bi * bi;
      bi = 2 * br * bi;
      br = t;
    }
    const ar = accRe[i];
    accRe[i] = ar * rr - accIm[i] * ri;
    accIm[i] = ar * ri + accIm[i] * rr;
  }
}

/** ε̂ with δ̂(ε̂) = target on the composed distribution: δ̂(ε) = Σ_{t_j > ε} p_j (1 − e^{ε − t_j}). */
function epsilonAt(c: Composed, target: number): number {
  const { pmf, h, k, shift } = c;
  const n = pmf.length;
  const t = (i: number) => (i - k) * h + shift;
  // Suffix sums from the top; stop at the first cell (from above) whose δ̂ exceeds the target, so
  // the answer is the largest crossing (conservative if rounding makes δ̂ wiggle).
  let d1 = 0;
  let d2 = 0;
  for (let i = n - 1; i >= 0; i--) {
    const nd1 = d1 + pmf[i];
    const nd2 = d2 + pmf[i] * Math.exp(-t(i));
    if (nd1 - Math.exp(t(i)) * nd2 > target) {
      // ε lies in (t_i, t_{i+1}]; there δ̂(ε) = d1 − e^ε d2 over the cells above i.
      if (i === n - 1) throw new InternalError('PRVAccountant: ε lies beyond the grid');
      return Math.log((d1 - target) / d2);
    }
    d1 = nd1;
    d2 = nd2;
  }
  return 0; // δ̂ is below the target everywhere on the grid: ε is at most its (negative) lower end
}

function checkRounding(c: Composed, d: number, deltaError: number): void {
  if (Number.EPSILON * c.pmf.length > d - deltaError) {
    throw new ArgumentError(`PRVAccountant.getEpsilon: delta ${d} is too small for a grid of ${c.pmf.length} points (rounding would dominate); use a larger delta or epsError`);
  }
}

/**
 * Opacus's `PRVAccountant` (Gopi et al. 2021). Tighter than RDP; `getEpsilonBounds` reports the
 * error interval. Cost grows with the number of steps (the grid spacing shrinks as 1/√steps):
 * about 2^20 points (a fraction of a second) for 60 epochs of MNIST at batch 256.
 */
export class PRVAccountant extends Accountant {
  readonly mechanism: Mechanism = 'prv';
  #cache: { key: string; value: PrvEpsilon } | null = null;

  /** δ, εerr and δerr checked (Opacus's defaults: εerr 0.01, δerr δ/1000). */
  #errors(delta: unknown, o: PrvOptions | undefined, where: string): { d: number; epsError: number; deltaError: number } {
    const d = checkDelta(delta, where);
    o = checkOptions(o, `${where} options`);
    const epsError = o.epsError === undefined ? 0.01 : checkNumber(o.epsError, `${where}: epsError`, { finite: true });
    if (!(epsError > 0)) throw new ArgumentError(`${where}: epsError must be > 0, got ${epsError}`);
    const deltaError = o.deltaError === undefined ? d / 1000 : checkNumber(o.deltaError, `${where}: deltaError`, { finite: true });
    if (!(deltaError > 0 && deltaError < d)) throw new ArgumentError(`${where}: deltaError must be in (0, delta = ${d}), got ${deltaError}`);
    return { d, epsError, deltaError };
  }

  /** ε at `delta` with its error bound (see `PrvEpsilon`). All zero before any step. */
  getEpsilonBounds(delta: number, o?: PrvOptions): PrvEpsilon {
    const { d, epsError, deltaError } = this.#errors(delta, o, 'PRVAccountant.getEpsilon');
    const runs = this.history.filter((e) => e.sampleRate > 0);
    const key = JSON.stringify([runs, d, epsError, deltaError]);
    if (this.#cache?.key === key) return { ...this.#cache.value };
    let value: PrvEpsilon;
    if (runs.length === 0) {
      value = { epsilon: 0, estimate: 0, lower: 0, upper: 0, epsError, deltaError, gridSize: 0 };
    } else if (runs.some((e) => e.noiseMultiplier === 0)) {
      value = { epsilon: Infinity, estimate: Infinity, lower: Infinity, upper: Infinity, epsError, deltaError, gridSize: 0 };
    } else {
      const c = compose(runs, epsError, deltaError);
      checkRounding(c, d, deltaError);
      const upper = epsilonAt(c, d - deltaError) + epsError;
      const lower = Math.max(0, epsilonAt(c, d + deltaError) - epsError);
      value = { epsilon: upper, estimate: epsilonAt(c, d), lower, upper, epsError, deltaError, gridSize: c.pmf.length };
    }
    this.#cache = { key, value };
    return { ...value };
  }

  /**
   * See `Accountant.maxSteps`. Brackets the count above RDP's exact one (PRV is the tighter, so it
   * allows more steps), searches the bracket (secant in √k, with bisection as the fallback) on one
   * grid fine enough for its upper end — the history's spectrum once, then a power and an inverse FFT
   * per probe — and settles the answer k with `getEpsilon` (ε(k) <= budget < ε(k + 1)). Where the
   * grid limit stops the search the count is the largest one checked (conservative).
   */
  maxSteps(params: { noiseMultiplier: number; sampleRate: number }, budget: { epsilon: number; delta: number }, o?: PrvOptions): number {
    const where = 'PRVAccountant.maxSteps';
    const p = checkMechanism(where, params);
    const b = checkBudget(budget, where);
    const { epsError, deltaError } = this.#errors(b.delta, o, where);
    const opts = { epsError, deltaError };
    const fits = (k: number) => this.epsilonAfter(p, k, (a) => a.getEpsilon(b.delta, opts)) <= b.epsilon;
    if (!fits(0)) return 0;
    if (p.sampleRate === 0) return Infinity;
    if (p.noiseMultiplier === 0) return 0;
    // RDP's exact count is a little below PRV's (PRV is tighter): bracket above it.
    const rdp = new RDPAccountant();
    rdp.loadStateDict({ mechanism: 'rdp', history: this.stateDict().history });
    const guess = rdp.maxSteps(p, b);
    let lo = 0;
    let hi = Math.min(MAX_STEPS, Math.max(1, Math.ceil(1.3 * guess) + 1));
    try {
      while (fits(hi)) {
        lo = hi;
        if (hi >= MAX_STEPS) return MAX_STEPS;
        hi = Math.min(2 * hi, MAX_STEPS);
      }
    } catch (e) {
      if (e instanceof ArgumentError) return settleDown(lo, fits); // the grid for `hi` steps is over the limit
      throw e;
    }
    // ε(lo) <= budget < ε(hi). Search on the one grid `hi` steps need (finer and wider than any
    // below): the history's spectrum once, then a power and an inverse FFT per probe.
    const runs = this.history.filter((e) => e.sampleRate > 0);
    const g = makeGrid([...runs, { ...p, steps: hi }], epsError, deltaError);
    const past = composeSpectrum(g, runs);
    const next = stepSpectrum(p.noiseMultiplier, p.sampleRate, g);
    const fastEps = (k: number) => epsilonAt(composeOn(g, [past, { spec: next, steps: k }]), b.delta - deltaError) + epsError;
    let epsLo = -Infinity;
    let epsHi = Infinity;
    let lastLow: boolean | null = null;
    let streak = 0;
    let probe = guess > lo && guess < hi ? guess : Math.floor((lo + hi) / 2);
    while (hi - lo > 1) {
      const e = fastEps(probe);
      const low = e <= b.epsilon;
      streak = low === lastLow ? streak + 1 : 1;
      lastLow = low;
      if (low) {
        lo = probe;
        epsLo = e;
      } else {
        hi = probe;
        epsHi = e;
      }
      // ε grows about as √k: interpolate in √k; two probes in a row on one side bisect instead.
      let m = Math.floor((lo + hi) / 2);
      if (streak < 2 && Number.isFinite(epsLo) && Number.isFinite(epsHi) && epsHi > epsLo) {
        const x = Math.sqrt(lo) + ((b.epsilon - epsLo) / (epsHi - epsLo)) * (Math.sqrt(hi) - Math.sqrt(lo));
        m = Math.round(x * x);
      }
      probe = Math.min(hi - 1, Math.max(lo + 1, m));
    }
    // The finer grid's ε differs from getEpsilon's by rounding: settle on getEpsilon's own answer.
    let k = settleDown(lo, fits);
    for (let i = 0; i < 8 && k < MAX_STEPS && fits(k + 1); i++) k++;
    return k;
  }

  /** ε spent at `delta`: the upper end of the error interval (a guarantee), as Opacus returns. */
  getEpsilon(delta: number, o?: PrvOptions): number {
    return this.getEpsilonBounds(delta, o).upper;
  }
}
