/**
 * The statistics randomized smoothing needs, in double precision (plain JS numbers: these act on
 * counts, not on tensors, so they are the same bits in every runtime): the normal CDF and quantile,
 * the regularized incomplete beta function and its inverse, the Clopper–Pearson interval and the
 * exact two-sided binomial test. Names and meanings follow SciPy (`scipy.stats.norm.cdf/ppf`,
 * `scipy.special.betainc`, `scipy.stats.beta.ppf`, `scipy.stats.binomtest`) and statsmodels
 * (`proportion_confint(method='beta')`).
 *
 * Accuracy (tested against SciPy 1.17 in tests/robust-smoothing.test.ts): `normalCdf` and
 * `betaInc` to about 1e-14 relative for moderate parameters, degrading to about 1e-10 when the
 * beta parameters reach 1e5–1e6 (cancellation in log Γ); the quantiles are found by bisection to
 * the last bit of x that those functions resolve.
 */
import { checkInt, checkNumber } from '../args.js';
import { ArgumentError, InternalError } from '../errors.js';

const EPS = 1e-16;
const TINY = 1e-300;
const MAX_ITER = 100_000;

/** Lanczos coefficients (g = 7, n = 9; Godfrey): log Γ to about 1e-15 relative for x > 0. */
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** log Γ(x) for x > 0 (`scipy.special.gammaln` on the positive axis). */
export function logGamma(x: number): number {
  checkNumber(x, 'logGamma: x', { finite: true });
  if (!(x > 0)) throw new ArgumentError(`logGamma needs x > 0, got ${x}`);
  return lgamma(x);
}

/** log Γ(x) for x > 0, unchecked (inner loops). */
function lgamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - lgamma(1 - x);
  const z = x - 1;
  let s = LANCZOS[0];
  for (let i = 1; i < 9; i++) s += LANCZOS[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

/** Stirling's series remainder log Γ(x) − ((x − ½)·log x − x + ½·log 2π) for x ≥ 10 (8 terms: error below 1e-17). */
function stirlingCorrection(x: number): number {
  const z = 1 / (x * x);
  const c = [1 / 12, -1 / 360, 1 / 1260, -1 / 1680, 1 / 1188, -691 / 360360, 1 / 156, -3617 / 122400];
  let s = 0;
  for (let i = c.length - 1; i >= 0; i--) s = s * z + c[i];
  return s / x;
}

const LOG_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);

/**
 * log B(a, b). For large parameters the log Γ terms cancel (each ~1e5 for counts ~1e4), so as R's
 * `lbeta` it combines their Stirling forms analytically and adds only the small corrections.
 */
function logBeta(a: number, b: number): number {
  const p = Math.min(a, b);
  const q = Math.max(a, b);
  if (p >= 10) {
    const corr = stirlingCorrection(p) + stirlingCorrection(q) - stirlingCorrection(p + q);
    return -0.5 * Math.log(q) + LOG_SQRT_2PI + corr + (p - 0.5) * Math.log(p / (p + q)) + q * Math.log1p(-p / (p + q));
  }
  if (q >= 10) {
    const corr = stirlingCorrection(q) - stirlingCorrection(p + q);
    return lgamma(p) + corr + p - p * Math.log(p + q) + (q - 0.5) * Math.log1p(-p / (p + q));
  }
  return lgamma(p) + lgamma(q) - lgamma(p + q);
}

/** Upper regularized incomplete gamma Q(a, x) (series for x < a + 1, Lentz's continued fraction otherwise). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(a * Math.log(x) - x - lgamma(a));
  if (x < a + 1) {
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < MAX_ITER; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * EPS) return 1 - sum * front;
    }
    throw new InternalError(`gammaQ(${a}, ${x}): the series did not converge`);
  }
  let b = x + 1 - a;
  let c = 1 / TINY;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < MAX_ITER; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < TINY) d = TINY;
    c = b + an / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) return front * h;
  }
  throw new InternalError(`gammaQ(${a}, ${x}): the continued fraction did not converge`);
}

/** Φ(x), the standard normal CDF (`scipy.stats.norm.cdf`): 0.5·Q(1/2, x²/2) in the lower tail, so tiny tails keep their relative accuracy. */
export function normalCdf(x: number): number {
  checkNumber(x, 'normalCdf: x');
  return normalCdfRaw(x);
}

function normalCdfRaw(x: number): number {
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  const q = 0.5 * gammaQ(0.5, 0.5 * x * x);
  return x < 0 ? q : 1 - q;
}

/**
 * Bisection for the x in [lo, hi] where the increasing `f` crosses `target`: halves until the
 * interval no longer shrinks in double precision, so x is as exact as `f` allows.
 */
function bisect(f: (x: number) => number, target: number, lo: number, hi: number): number {
  for (let i = 0; i < 2200; i++) {
    const mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) return mid;
    if (f(mid) < target) lo = mid;
    else hi = mid;
  }
  return lo + (hi - lo) / 2;
}

/** Φ⁻¹(p), the standard normal quantile (`scipy.stats.norm.ppf`); −∞ at 0 and +∞ at 1. */
export function normalQuantile(p: number): number {
  checkProbability(p, 'normalQuantile: p');
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  if (p === 0.5) return 0;
  // Solved in the lower tail (where Φ keeps its relative accuracy) and mirrored.
  if (p > 0.5) return -normalQuantile(1 - p);
  return bisect(normalCdfRaw, p, -40, 0);
}

/** The continued fraction of I_x(a, b) (Numerical Recipes' betacf, modified Lentz). */
function betaCf(a: number, b: number, x: number): number {
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < TINY) d = TINY;
  d = 1 / d;
  let h = d;
  for (let m = 1; m < MAX_ITER; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < TINY) d = TINY;
    c = 1 + aa / c;
    if (Math.abs(c) < TINY) c = TINY;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < EPS) return h;
  }
  throw new InternalError(`betaInc(${a}, ${b}, ${x}): the continued fraction did not converge`);
}

function checkShape(a: number, b: number, what: string): void {
  checkNumber(a, `${what}: a`, { finite: true });
  checkNumber(b, `${what}: b`, { finite: true });
  if (!(a > 0 && b > 0)) throw new ArgumentError(`${what} needs a > 0 and b > 0, got a = ${a}, b = ${b}`);
}

function checkProbability(p: number, what: string): void {
  checkNumber(p, what);
  if (!(p >= 0 && p <= 1)) throw new ArgumentError(`${what} must be in [0, 1], got ${p}`);
}

/** I_x(a, b) without argument checks (used in inner loops). */
function betaIncRaw(a: number, b: number, x: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const front = Math.exp(a * Math.log(x) + b * Math.log1p(-x) - logBeta(a, b));
  // The continued fraction converges fast below (a + 1) / (a + b + 2); above it, by symmetry.
  if (x < (a + 1) / (a + b + 2)) return (front * betaCf(a, b, x)) / a;
  return 1 - (front * betaCf(b, a, 1 - x)) / b;
}

/** The regularized incomplete beta function I_x(a, b) (`scipy.special.betainc(a, b, x)`): the Beta(a, b) CDF at x. */
export function betaInc(a: number, b: number, x: number): number {
  checkShape(a, b, 'betaInc');
  checkProbability(x, 'betaInc: x');
  return betaIncRaw(a, b, x);
}

/** The q-quantile of Beta(a, b) (`scipy.stats.beta.ppf(q, a, b)`). */
export function betaQuantile(q: number, a: number, b: number): number {
  checkShape(a, b, 'betaQuantile');
  checkProbability(q, 'betaQuantile: q');
  if (q === 0) return 0;
  if (q === 1) return 1;
  return bisect((x) => betaIncRaw(a, b, x), q, 0, 1);
}

function checkCount(k: number, n: number, what: string): void {
  checkInt(n, `${what}: nobs`, 1, Number.MAX_SAFE_INTEGER);
  checkInt(k, `${what}: count`, 0, n);
}

/**
 * The Clopper–Pearson ("exact", beta) confidence interval for a binomial proportion with `count`
 * successes in `nobs` trials at confidence 1 − alpha, two-sided — statsmodels'
 * `proportion_confint(count, nobs, alpha, method='beta')`: [Beta⁻¹(α/2; k, n−k+1), Beta⁻¹(1−α/2; k+1, n−k)],
 * with 0 and 1 at the ends. Its lower end at `alpha = 2α'` is the one-sided lower bound at level 1 − α'.
 */
export function proportionConfint(count: number, nobs: number, alpha = 0.05): [number, number] {
  checkCount(count, nobs, 'proportionConfint');
  checkNumber(alpha, 'proportionConfint: alpha');
  if (!(alpha > 0 && alpha < 1)) throw new ArgumentError(`proportionConfint: alpha must be in (0, 1), got ${alpha}`);
  const lower = count === 0 ? 0 : betaQuantile(alpha / 2, count, nobs - count + 1);
  const upper = count === nobs ? 1 : betaQuantile(1 - alpha / 2, count + 1, nobs - count);
  return [lower, upper];
}

/** The binomial pmf P(X = k), X ~ Bin(n, p), for 0 < p < 1. */
function binomPmf(k: number, n: number, p: number): number {
  // C(n, k) = 1 / ((n + 1)·B(k + 1, n − k + 1)), with the cancellation-free log B.
  return Math.exp(-Math.log(n + 1) - logBeta(k + 1, n - k + 1) + k * Math.log(p) + (n - k) * Math.log1p(-p));
}

/** P(X ≤ k) = I_{1−p}(n − k, k + 1). */
function binomCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  return betaIncRaw(n - k, k + 1, 1 - p);
}

/** P(X ≥ k) = I_p(k, n − k + 1). */
function binomSf(k: number, n: number, p: number): number {
  if (k <= 0) return 1;
  if (k > n) return 0;
  return betaIncRaw(k, n - k + 1, p);
}

/**
 * The exact two-sided binomial test's p-value for `k` successes in `n` trials under success
 * probability `p` (`scipy.stats.binomtest(k, n, p).pvalue`): the probability of every outcome no
 * more likely than `k` (SciPy's relative tolerance 1e-7 included). Cohen et al.'s PREDICT uses it at
 * p = 0.5 to decide between the two most frequent classes.
 */
export function binomTest(k: number, n: number, p = 0.5): number {
  checkInt(n, 'binomTest: n', 1, Number.MAX_SAFE_INTEGER);
  checkInt(k, 'binomTest: k', 0, n);
  checkNumber(p, 'binomTest: p');
  if (!(p >= 0 && p <= 1)) throw new ArgumentError(`binomTest: p must be in [0, 1], got ${p}`);
  if (p === 0) return k === 0 ? 1 : 0;
  if (p === 1) return k === n ? 1 : 0;
  const mean = p * n;
  if (k === mean) return 1;
  const d = binomPmf(k, n, p) * (1 + 1e-7);
  let pval: number;
  if (k < mean) {
    // The pmf decreases on [ceil(pn), n]: find the first j there with pmf(j) ≤ d; the tail is P(X ≥ j).
    let lo = Math.ceil(mean);
    let hi = n + 1;
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      if (binomPmf(mid, n, p) <= d) hi = mid;
      else lo = mid + 1;
    }
    pval = binomCdf(k, n, p) + binomSf(lo, n, p);
  } else {
    // The pmf increases on [0, floor(pn)]: find the last j there with pmf(j) ≤ d; the tail is P(X ≤ j).
    let lo = -1;
    let hi = Math.floor(mean);
    while (lo < hi) {
      const mid = lo + Math.ceil((hi - lo) / 2);
      if (binomPmf(mid, n, p) <= d) lo = mid;
      else hi = mid - 1;
    }
    pval = binomCdf(lo, n, p) + binomSf(k, n, p);
  }
  return Math.min(1, pval);
}
